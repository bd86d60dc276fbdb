"""The fault tests a generated project runs, on the local backend and on the compose one."""

# Run against a stack of 'a' and 'b' (which reports unhealthy while 'a' is down), on
# any backend: each fault, and the stack healed before the next test.
FAULT_TESTS = """
import httpx, pytest, time

def health(handle):  # a loaded machine may answer slowly: that is not what is tested
    return httpx.get(handle.url + "/health", timeout=10).status_code

def until(predicate):
    deadline = time.monotonic() + 20
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.02)

def test_kill(pyairtable_b, pyairtable_a, pyairtable_faults):
    assert health(pyairtable_b) == 200
    pyairtable_faults.kill("a")
    until(lambda: health(pyairtable_b) == 503)  # b notices its dependency is gone

def test_healed_after_kill(pyairtable_b, pyairtable_a):
    assert health(pyairtable_b) == 200 and health(pyairtable_a) == 200

def test_pause(pyairtable_a, pyairtable_faults):
    pyairtable_faults.pause("a")
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(pyairtable_a.url + "/health", timeout=0.5)

def test_healed_after_pause(pyairtable_a):
    assert health(pyairtable_a) == 200

def test_stop_and_restart(pyairtable_a, pyairtable_faults):
    pyairtable_faults.stop("a")
    with pytest.raises(httpx.ConnectError):
        health(pyairtable_a)
    assert health(pyairtable_faults.restart("a")) == 200

def test_unknown_service(pyairtable_faults):
    with pytest.raises(Exception, match="service 'nope' is not running"):
        pyairtable_faults.kill("nope")
"""
