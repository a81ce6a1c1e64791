"""The bridge driver's nftables table: rendering, our table only, and the entry point."""

from __future__ import annotations

from pathlib import Path

from pyengine.drivers import registry
from pyengine.drivers.network import ENTRY_POINT_NAMESPACE
from pyengine_net_bridge.firewall import BridgeRules, Forward, Nftables, RuleSet, render
from pyengine_net_bridge.plugin import DEFAULT_ROOT, table_name


def test_render_has_nat_publishing_and_isolation():
    rules = RuleSet(
        bridges=[BridgeRules("pye-a", "10.123.1.0/24"), BridgeRules("pye-b", "10.123.2.0/24", internal=True)],
        forwards=[
            Forward("tcp", "", 8080, "10.123.1.2", 80),
            Forward("udp", "127.0.0.1", 5353, "10.123.1.2", 53),
        ],
    )
    text = render(rules, "pyengine-test")
    assert text.startswith("add table ip pyengine-test\ndelete table ip pyengine-test\n")
    assert "tcp dport 8080 dnat to 10.123.1.2:80" in text
    assert "ip daddr 127.0.0.1 udp dport 5353 dnat to 10.123.1.2:53" in text
    assert 'ip saddr 10.123.1.0/24 oifname != "pye-a" masquerade' in text
    assert 'ip saddr 10.123.2.0/24 oifname != "pye-b" masquerade' not in text  # internal: no way out
    assert 'iifname "pye-a" oifname "pye-b" drop' in text and 'iifname "pye-b" oifname "pye-a" drop' in text


def test_the_rules_live_in_our_table_only_and_go_with_it(tmp_path: Path):
    nft = Nftables(table_name(tmp_path))
    try:
        nft.apply(RuleSet(bridges=[BridgeRules("pye-t", "10.123.3.0/24")]))
        listed = nft.list_table()
        assert f"table ip {nft.table}" in listed and "masquerade" in listed
    finally:
        nft.delete_table()
    assert nft.list_table() == ""


def test_each_daemon_has_its_own_table_name(tmp_path: Path):
    assert table_name(DEFAULT_ROOT) == "pyengine"
    assert table_name(tmp_path).startswith("pyengine-") and table_name(tmp_path) != table_name(tmp_path / "x")


def test_the_bridge_driver_is_found_by_its_entry_point():
    assert "bridge" in registry.installed_factories(ENTRY_POINT_NAMESPACE)
