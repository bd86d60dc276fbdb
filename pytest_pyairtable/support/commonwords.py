"""Ordinary words: a secret that is one of them is masked only where it stands as a
secret (after a secret's name, as a URL's password, after a secret flag), never in free
text, where hiding the word would garble what users read (``secret``, ``example``,
``postgres``, ``welcome``). Lower case; a value is compared lower-cased."""

from __future__ import annotations

WORDS = frozenset(
    """
    access account action active address admin administrator airflow alert allow anonymous
    answer apache api application archive assert attempt backend backup banana baseball
    basic batman bearer before belong beta binary bitnami broker browser bucket buffer build
    builder butterfly cache calendar called cancel cassandra central change changed channel
    charlie chicken client cluster collector column command commit common compose config
    configure connect connection console consumer container content context control cookie
    counter create credential credentials custom customer daemon dashboard database default
    delete demo deploy deployment design develop developer development device digest direct
    disable docker domain dragon driver dummy elastic elasticsearch email enable engine
    enter entry environment error event example exchange expire export external failed
    failure false family father flower football forward freedom frontend gateway general
    github gitlab global google grafana guest hello helper hidden history holder hostname
    ignore iloveyou import inbound incoming index information ingest initial insecure insert
    instance internal invalid jenkins jordan kafka keycloak killer kubernetes letmein
    library license liquid listen local localhost logger login lovely manager master member
    memory message metrics michael migrate minio mongo mongodb monitor monkey mustang mysql
    network nginx nobody normal notify number object office online openid operator option
    orange origin output owner package parent passw0rd passwd password password1 passwords
    pepper pgadmin phoenix picture please plugin policy portal postgres postgresql prefix
    primary princess private process produce producer product production profile project
    prometheus protocol provider proxy public publish python qwerty qwerty123 rabbit
    rabbitmq random reader realm record redis region register release remote replace replica
    report request require reset result return review rocket router runner sample sandbox
    scheduler schema search secret secrets section secure security select sender sentry
    server service session setting settings shadow shared simple single socket source
    sparkle stable staging standard start status storage stream string subscriber summer
    sunshine superman superuser support system tables target template temporal tenant tester
    testing thomas token tracker traffic trigger trustno1 unknown update upload upstream
    username validate value values vault version viewer volume warning webhook welcome
    whatever window worker writer zookeeper
    """.split()  # noqa: SIM905 - a word list reads best as words
)
