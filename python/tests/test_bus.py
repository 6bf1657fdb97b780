"""The Python module (python/bus) against a real busd: publish/subscribe with wildcards, the
iterator and callbacks, queue groups, request/respond, headers, and errors as exceptions."""
import threading
import time

import pytest

import bus
from conftest import unique_bus


def test_should_deliver_to_each_wildcard_what_it_matches(busd):
    with bus.connect(busd, name="py test") as nc:
        everything = nc.subscribe("orders.>")
        new_ones = nc.subscribe("orders.*.new")
        for s in ("orders.eu.new", "orders.us.paid", "orders.us.new"):
            nc.publish(s, f"order on {s}")
        assert [m.subject for m in everything.messages(timeout=0.2)] == ["orders.eu.new", "orders.us.paid", "orders.us.new"]
        got = list(new_ones.messages(timeout=0.2))
        assert [(m.subject, m.data) for m in got] == [("orders.eu.new", b"order on orders.eu.new"),
                                                      ("orders.us.new", b"order on orders.us.new")]
        assert everything.delivered == 3 and everything.dropped == 0


def test_should_carry_binary_data_a_reply_subject_and_headers(busd):
    with bus.connect(busd) as nc:
        sub = nc.subscribe("b.*")
        nc.publish("b.x", b"\x00\xffbin", reply="b.back", headers={"Trace-Id": "7", "Tag": ["a", "b"]})
        m = sub.next_msg(timeout=1)
        assert m.data == b"\x00\xffbin"
        assert m.reply == "b.back"
        assert m.headers == {"Trace-Id": "7", "Tag": "a"}
        assert m.header_values("Tag") == ["a", "b"]


def test_should_run_callbacks_on_the_subscription_thread_and_give_each_queue_job_to_one_worker(busd):
    with bus.connect(busd) as nc:
        seen, lock, threads = [], threading.Lock(), set()
        done = threading.Event()

        def worker(name):
            def on_job(m):
                with lock:
                    threads.add(threading.get_ident())
                    seen.append((name, m.data))
                    if len(seen) == 20:
                        done.set()
            return on_job

        for w in ("w1", "w2"):
            nc.subscribe("jobs.*", queue="workers", cb=worker(w))
        for i in range(20):
            nc.publish("jobs.resize", str(i))
        assert done.wait(5), seen
        time.sleep(0.05)  # nothing more may come: each job exactly once
        assert sorted(int(d) for _, d in seen) == list(range(20))
        assert threading.main_thread().ident not in threads


def test_should_answer_requests_and_raise_no_responders_and_timeout(busd):
    with bus.connect(busd) as nc:
        nc.subscribe("svc.echo", cb=lambda m: m.respond(b"echo: " + m.data, headers={"By": "py"}))
        reply = nc.request("svc.echo", b"hi", timeout=1)
        assert reply.data == b"echo: hi"
        assert reply.headers["By"] == "py"
        with pytest.raises(bus.NoRespondersError) as e:
            nc.request("svc.nobody", b"?", timeout=1)
        assert e.value.status == "no_responders"
        nc.subscribe("svc.silent", cb=lambda m: None)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            nc.request("svc.silent", b"?", timeout=0.2)
        assert time.monotonic() - t0 >= 0.19


def test_should_raise_one_line_errors_for_bad_input_and_closed_handles(busd):
    nc = bus.connect(busd)
    with pytest.raises(bus.InvalidSubjectError) as e:
        nc.publish("bad subject", b"x")
    assert "bad subject" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(bus.InvalidSubjectError):
        nc.subscribe("a..b")
    with pytest.raises(bus.Error) as big:
        nc.publish("a.b", b"x" * (nc.max_payload + 1))
    assert big.value.status == "payload_too_large"
    sub = nc.subscribe("a.b")
    with pytest.raises(bus.TimeoutError):
        sub.next_msg(timeout=0)
    nc.close()
    with pytest.raises(bus.ClosedError):
        nc.publish("a.b", b"x")
    with pytest.raises(bus.ClosedError):
        sub.next_msg(timeout=0)


def test_should_say_when_no_broker_serves_the_bus():
    name = unique_bus()
    with pytest.raises(bus.BrokerNotRunningError) as e:
        bus.connect(name)
    assert name in str(e.value)


def test_should_serve_a_bus_from_an_embedded_broker():
    name = unique_bus()
    with bus.Broker(name):
        with bus.connect(name) as nc:
            sub = nc.subscribe("greetings")
            nc.publish("greetings", "hello")
            assert sub.next_msg(timeout=1).data == b"hello"
    with pytest.raises(bus.BrokerNotRunningError):
        bus.connect(name)
    assert bus.version()


def test_should_run_the_python_example_against_busd(busd):
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.path.join(root, "python"))
    p = subprocess.run([sys.executable, os.path.join(root, "examples", "pubsub.py"), busd], env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "orders.us.paid: order on orders.us.paid (Trace-Id 42)" in p.stdout
    assert "svc.upper: HELLO" in p.stdout
    assert "svc.nobody: no_responders" in p.stdout


def test_should_close_live_callback_subscriptions_at_exit_and_refuse_closing_from_a_callback(busd):
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = (
        "import bus, threading\n"
        f"nc = bus.connect({busd!r})\n"
        "seen, done = [], threading.Event()\n"
        "def cb(m):\n"
        "    try:\n"
        "        nc.close()\n"
        "    except bus.Error as e:\n"
        "        seen.append(e.status)\n"
        "    done.set()\n"
        "nc.subscribe('exit.test', cb=cb)\n"
        "nc.publish('exit.test', b'x')\n"
        "assert done.wait(5)\n"
        "print(seen[0])\n"
        "nc.publish('exit.test', b'left for the exit')\n")  # the interpreter ends with it live
    p = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONPATH=os.path.join(root, "python")),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "invalid_argument"


def test_should_free_dropped_pull_subscriptions(busd):
    with bus.connect(busd) as nc:
        for _ in range(300):  # more than the broker's 256 subscriptions, if they were kept
            nc.subscribe("drop.me")
        nc.subscribe("drop.me").unsubscribe()
