"""Proxy mode's commands as data: the HAProxy configuration, the runtime-API
batches, the parsers of its answers and the switch-back rule.  No engine;
test_proxy.py runs them against the real HAProxy."""

from __future__ import annotations

import pytest

from jenkinsctl.deploy.proxy import (Binding, Counters, ProxySettings, bindings_from_port_bindings, counters_of,
                                     exec_argv, parse_probe_http, parse_servers_state,
                                     probe_http_argv, probe_tcp_argv, parse_stat, port_bindings_of, render_config,
                                     runtime_switch_commands, static_hash, tripped)
from jenkinsctl.errors import DeployError


def test_bindings_from_docker_port_bindings_and_back():
    pb = {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}], "9000/tcp": [{"HostIp": "", "HostPort": "9000"}]}
    bs = bindings_from_port_bindings(pb)
    assert bs == [Binding("127.0.0.1", 18080, 8080), Binding("", 9000, 9000)]
    assert [b.bind for b in bs] == ["127.0.0.1:18080", ":9000"]
    assert port_bindings_of(bs) == pb


@pytest.mark.parametrize("pb, words", [
    ({"53/udp": [{"HostIp": "", "HostPort": "53"}]}, "TCP only"),
    ({"80/tcp": [{"HostIp": "", "HostPort": ""}]}, "random host port"),
])
def test_what_the_proxy_cannot_forward_is_refused_with_a_hint(pb, words):
    with pytest.raises(DeployError) as e:
        bindings_from_port_bindings(pb)
    assert words in e.value.message and "stop-first" in e.value.hint


def test_config_points_one_slot_at_the_app_and_parks_the_other():
    text = render_config([Binding("127.0.0.1", 18080, 8080)], ProxySettings(drain=20), 3, "172.18.0.5", slot="b")
    assert "stats socket /run/haproxy/g3.sock mode 600 level admin expose-fd listeners" in text
    assert "hard-stop-after 25s" in text
    assert "    bind 127.0.0.1:18080\n" in text
    assert "    server a 127.0.0.1:8080 disabled\n" in text
    assert "    server b 172.18.0.5:8080\n" in text
    assert "retry-on conn-failure empty-response" in text and "mode http" in text
    tcp = render_config([Binding("", 5432, 5432)], ProxySettings(mode="tcp"), 1, None)
    assert "mode tcp" in tcp and "retry-on" not in tcp and "server a 127.0.0.1:5432 disabled" in tcp


def test_static_hash_ignores_the_address_but_not_the_settings_or_image():
    b = [Binding("127.0.0.1", 1, 2)]
    assert static_hash(b, ProxySettings(), "img1") == static_hash(b, ProxySettings(), "img1")
    assert static_hash(b, ProxySettings(), "img1") != static_hash(b, ProxySettings(drain=5), "img1")
    assert static_hash(b, ProxySettings(), "img1") != static_hash(b, ProxySettings(), "img2")
    assert static_hash(b, ProxySettings(), "img1") != static_hash([Binding("127.0.0.1", 3, 2)], ProxySettings(),
                                                                  "img1")


def test_switch_batch_readies_the_new_slot_before_draining_the_old():
    cmds = runtime_switch_commands(["p8080"], "b", "172.18.0.9", {"p8080": 8080}, "a")
    assert cmds == ["set server p8080/b addr 172.18.0.9 port 8080", "set server p8080/b state ready",
                    "set server p8080/a state drain"]
    assert runtime_switch_commands(["p1"], "a", "10.0.0.1", {"p1": 1}, None)[-1] == "set server p1/a state ready"
    argv = exec_argv("/run/haproxy/g1.sock", cmds)
    assert argv[:2] == ["sh", "-c"] and argv[-2] == "; ".join(cmds) and argv[-1] == "/run/haproxy/g1.sock"


STAT = """# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,
p8080,FRONTEND,,,1,5,,100,,,,,,,,,,OPEN,0,90,0,0,10,0,
p8080,a,0,0,2,3,,40,,,,,,0,0,0,0,DRAIN,0,40,0,0,0,0,
p8080,b,0,0,0,3,,60,,,,,,1,2,0,0,no check,0,50,0,0,10,0,
"""

SERVERS = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight
3 p8080 1 a 172.18.0.2 2 8 1
3 p8080 2 b 172.18.0.3 2 0 1
"""


def test_parsers_and_counters():
    stat = parse_stat(STAT)
    c = counters_of(stat, ["p8080"], "b")
    assert (c.answers, c.errors_5xx, c.conn_errors, c.sessions) == (60, 10, 3, 0)
    assert counters_of(stat, ["p8080"], "a").sessions == 2
    servers = parse_servers_state(SERVERS)
    assert servers[("p8080", "a")]["srv_addr"] == "172.18.0.2"
    assert servers[("p8080", "a")]["srv_admin_state"] == "8"     # drain
    assert c.minus(Counters(50, 0, 0, 0)).to_dict() == {"answers": 10, "errors_5xx": 10, "conn_errors": 3,
                                                        "sessions": 0}


@pytest.mark.parametrize("answers, e5, econ, trip", [
    (100, 0, 0, False),
    (100, 2, 0, False),     # under min_errors
    (100, 10, 0, False),    # 10 %: not above the 10 % threshold
    (100, 11, 0, True),
    (3, 3, 0, True),        # everything failed
    (0, 0, 3, True),        # the new version refuses connections
])
def test_the_switch_back_rule(answers, e5, econ, trip):
    assert tripped(Counters(answers, e5, econ, 0), ProxySettings()) is trip


def _strategy(**target):
    import types

    from jenkinsctl.deploy import _default_target
    from jenkinsctl.deploy.container import ContainerStrategy

    t = _default_target("container", "web")
    t = type(t)(**{**t.__dict__, **target})
    return ContainerStrategy(types.SimpleNamespace(api=None), t, labels={})


@pytest.mark.parametrize("switch, bindings, proxied, want", [
    (None, [Binding("", 80, 8080)], False, "proxy"),          # published ports: proxy by default
    (None, [], False, "start-first"),                        # none: start-first, as before
    (None, [], True, "proxy"),                               # already behind its proxy
    ("stop-first", [Binding("", 80, 8080)], False, "stop-first"),
    ("proxy", [Binding("", 80, 8080)], False, "proxy"),
])
def test_switch_mode(switch, bindings, proxied, want):
    assert _strategy(switch=switch)._switch_mode(bindings, proxied) == want


@pytest.mark.parametrize("switch, bindings, proxied, words", [
    ("stop-first", [], True, "docker rm -f web.proxy"),
    ("start-first", [Binding("", 80, 8080)], False, "cannot work with published host ports"),
    ("proxy", [], False, "publishes no host port"),
])
def test_switch_modes_that_cannot_work_are_refused(switch, bindings, proxied, words):
    with pytest.raises(DeployError) as e:
        _strategy(switch=switch)._switch_mode(bindings, proxied)
    assert words in e.value.message + (e.value.hint or "")


def test_proxy_settings_come_from_the_target():
    s = _strategy(proxy={"watch": 5, "drain": 2, "mode": "tcp", "max_error_rate": 0.5, "min_errors": 9})
    assert s.proxy_settings == ProxySettings(mode="tcp", watch=5, drain=2, max_error_rate=0.5, min_errors=9)
    assert _strategy().proxy_settings == ProxySettings()


def test_probe_from_the_proxy_is_one_http_1_0_request_through_socat():
    argv = probe_http_argv("http://172.18.0.5:8080/health?full=1", 1.0)
    assert argv[:2] == ["sh", "-c"] and "socat" in argv[2] and "head -c 4096" in argv[2]
    request, addr, t = argv[4:]
    assert request == ("GET /health?full=1 HTTP/1.0\r\nHost: 172.18.0.5:8080\r\nUser-Agent: jenkinsctl-health\r\n"
                       "Connection: close\r\n\r\n")
    assert (addr, t) == ("TCP:172.18.0.5:8080,connect-timeout=1", "1")
    assert probe_http_argv("https://10.0.0.2/", 0.05)[5] == "OPENSSL:10.0.0.2:443,verify=0,connect-timeout=0.2"
    assert probe_tcp_argv("172.18.0.5", 8080, 1.0)[4:] == ["TCP:172.18.0.5:8080,connect-timeout=1", "1"]


@pytest.mark.parametrize("out, ok, words", [
    ("HTTP/1.0 200 OK\r\nServer: x\r\n\r\nok 1.0.0\n", True, "-> 200: ok 1.0.0"),
    ("HTTP/1.1 503 Service Unavailable\r\n\r\nstarting", False, "-> 503: starting"),
    ("2026/12/03 12:00:00 socat[7] E connect(5, AF=2 172.18.0.5:8080, 16): Connection refused\n", False,
     "Connection refused"),
    ("", False, "no answer"),
])
def test_what_the_proxy_probe_printed_reads_like_a_direct_probe(out, ok, words):
    got, detail = parse_probe_http("http://172.18.0.5:8080/health?token=s3cret", out)
    assert got is ok and words in detail
    assert "s3cret" not in detail and detail.startswith("GET http://172.18.0.5:8080/health")
