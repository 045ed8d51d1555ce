"""keepalived.conf grammar: pyvrrp.config.kaconf_parser (IOP-: keepalived config compatibility)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pyvrrp.config.kaconf_parser import KaConfSyntaxError, Node, parse_file, parse_text, tokenize


def _kw(nodes: list[Node]) -> list[str]:
    return [n.keyword for n in nodes]


def test_blocks_nested_with_lines_and_file() -> None:
    """Blocks nest; every node carries its file and 1-based line."""
    text = "vrrp_instance VI_1 {\n    state MASTER\n    virtual_ipaddress {\n        10.0.0.1/24\n    }\n}\n"
    res = parse_text(text, filename="k.conf")
    (vi,) = res.nodes
    assert (vi.keyword, vi.args, vi.line, vi.file) == ("vrrp_instance", ["VI_1"], 1, "k.conf")
    assert vi.children is not None
    assert _kw(vi.children) == ["state", "virtual_ipaddress"]
    state, vip = vi.children
    assert state.args == ["MASTER"] and state.children is None and state.line == 2
    assert vip.children is not None and vip.children[0].words() == ["10.0.0.1/24"]
    assert vip.children[0].line == 4


def test_open_brace_on_next_line() -> None:
    """`{` alone on the following line opens the block of the previous keyword."""
    res = parse_text("global_defs\n{\n  router_id r1\n}\n")
    (g,) = res.nodes
    assert g.keyword == "global_defs" and g.children is not None
    assert g.children[0].words() == ["router_id", "r1"]


def test_nested_blocks_on_one_line_accepted() -> None:
    """We accept `a { b { c } }` on one line (keepalived rejects it: 'Unexpected {')."""
    res = parse_text("vrrp_sync_group G { group { VI_1 VI_2 } }\n")
    (g,) = res.nodes
    assert g.children is not None and g.children[0].keyword == "group"
    assert g.children[0].children is not None
    assert g.children[0].children[0].words() == ["VI_1", "VI_2"]


def test_empty_block_is_not_none() -> None:
    res = parse_text("virtual_ipaddress {\n}\nnopreempt\n")
    assert res.nodes[0].children == [] and res.nodes[1].children is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("priority 100 # trailing", ["priority", "100"]),
        ("priority 100 ! trailing", ["priority", "100"]),
        ("priority 100# glued comment", ["priority", "100"]),
        ('notify "/bin/x #1 !" # c', ["notify", "/bin/x #1 !"]),
        ("auth_pass a\\#b", ["auth_pass", "a#b"]),
    ],
)
def test_comments(line: str, expected: list[str]) -> None:
    """`#` and `!` start comments anywhere outside double quotes; `\\#` escapes."""
    res = parse_text(f"! full line comment\n# another\n{line}\n")
    assert [n.words() for n in res.nodes] == [expected]


def test_quoted_strings_single_token() -> None:
    assert tokenize('script "killall -0 sshd" extra') == ["script", "killall -0 sshd", "extra"]
    res = parse_text('notify_master "/usr/local/bin/vrrp.sh  MASTER  VI_1"\n')
    assert res.nodes[0].args == ["/usr/local/bin/vrrp.sh  MASTER  VI_1"]


def test_braces_inside_quotes_are_text() -> None:
    res = parse_text('script "echo {x}"\n')
    assert res.nodes[0].args == ["echo {x}"]


def test_unterminated_quote_is_error_with_line() -> None:
    with pytest.raises(KaConfSyntaxError) as ei:
        parse_text('a 1\nscript "oops\n', filename="q.conf")
    assert (ei.value.file, ei.value.line) == ("q.conf", 2)


def test_missing_close_brace_reports_opening_line() -> None:
    with pytest.raises(KaConfSyntaxError) as ei:
        parse_text("global_defs {\n router_id x\n}\nvrrp_instance VI_1 {\n state MASTER\n", filename="m.conf")
    assert ei.value.line == 4 and ei.value.file == "m.conf"
    assert "vrrp_instance" in str(ei.value) and "m.conf:4" in str(ei.value)


def test_extra_close_brace_is_error_with_line() -> None:
    with pytest.raises(KaConfSyntaxError) as ei:
        parse_text("a {\n}\n}\n", filename="e.conf")
    assert ei.value.line == 3 and "extra '}'" in ei.value.message


def test_open_brace_without_keyword() -> None:
    with pytest.raises(KaConfSyntaxError) as ei:
        parse_text("{\n}\n")
    assert ei.value.line == 1


@pytest.mark.parametrize(
    ("config_id", "expected"),
    [
        (None, ["85"]),
        ("high", ["170"]),
        ("low", ["85"]),
    ],
)
def test_conditional_lines(config_id: str | None, expected: list[str]) -> None:
    """`@id` keeps a line only for that config id, `@^id` for every other id (and none)."""
    text = "@high priority 170\n@^high priority 85\n"
    res = parse_text(text, config_id=config_id)
    assert [n.args[0] for n in res.nodes] == expected


def test_conditional_with_no_config_id_drops_at_lines() -> None:
    res = parse_text("@a x 1\n@b y 2\nz 3\n")
    assert _kw(res.nodes) == ["z"]


def test_definitions_and_substitution() -> None:
    """`$NAME=value`, then `$NAME` (blank-delimited) and `${NAME}` (anywhere)."""
    text = "$IF=eth0\n$PRIO = 150\ninterface $IF\npriority ${PRIO}\nlabel ${IF}:1\nliteral $IFX\n"
    res = parse_text(text)
    assert [n.words() for n in res.nodes] == [
        ["interface", "eth0"],
        ["priority", "150"],
        ["label", "eth0:1"],
        ["literal", "$IFX"],  # not a defined name: left as is, like keepalived
    ]


def test_definition_redefined_and_nested() -> None:
    text = "$A=1\n$B=${A}0\nx $B\n$A=2\ny ${A}\n"
    res = parse_text(text)
    # $B's value is the literal text "${A}0", expanded at use time
    assert [n.words() for n in res.nodes] == [["x", "10"], ["y", "2"]]


def test_multiline_definition_expands_to_lines() -> None:
    text = "$VIPS=10.0.0.1/24 \\\n  10.0.0.2/24 \\\n  10.0.0.3/24\nvirtual_ipaddress {\n  $VIPS\n}\n"
    res = parse_text(text)
    vip = res.nodes[0]
    assert vip.children is not None
    assert [c.keyword for c in vip.children] == ["10.0.0.1/24", "10.0.0.2/24", "10.0.0.3/24"]
    assert all(c.line == 5 for c in vip.children)


def test_multiline_definition_with_block() -> None:
    text = "$CHK=TCP_CHECK { \\\n connect_timeout 3 \\\n}\nreal_server 10.0.0.1 80 {\n$CHK\n}\n"
    rs = parse_text(text).nodes[0]
    assert rs.children is not None
    chk = rs.children[0]
    assert chk.keyword == "TCP_CHECK" and chk.children is not None
    assert chk.children[0].words() == ["connect_timeout", "3"]


def test_instance_definition() -> None:
    res = parse_text("router_id lb-${_INSTANCE}\n", config_id="lb1")
    assert res.nodes[0].args == ["lb-lb1"]


def test_conditional_and_definition_combined() -> None:
    res = parse_text("@lb1 $P=150\n@lb2 $P=100\npriority $P\n", config_id="lb2")
    assert res.nodes[0].args == ["100"]


def test_include_glob_relative_to_including_file(tmp_path: Path) -> None:
    """`include` globs resolve against the including file's directory, sorted."""
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text("vrrp_instance B {\n priority 2\n}\n")
    (tmp_path / "conf.d" / "a.conf").write_text("vrrp_instance A {\n priority 1\n}\n")
    (tmp_path / "conf.d" / "skip.txt").write_text("garbage {\n")
    main = tmp_path / "keepalived.conf"
    main.write_text("global_defs {\n}\ninclude conf.d/*.conf\n")
    res = parse_file(main)
    assert _kw(res.nodes) == ["global_defs", "vrrp_instance", "vrrp_instance"]
    assert [n.args[0] for n in res.nodes[1:]] == ["A", "B"]
    assert res.nodes[1].file == str(tmp_path / "conf.d" / "a.conf") and res.nodes[1].line == 1
    assert res.files == [str(main), str(tmp_path / "conf.d" / "a.conf"), str(tmp_path / "conf.d" / "b.conf")]


def test_include_inside_block_and_brace_alternatives(tmp_path: Path) -> None:
    (tmp_path / "v1").write_text("10.0.0.1\n")
    (tmp_path / "v2").write_text("10.0.0.2\n")
    main = tmp_path / "k.conf"
    main.write_text("virtual_ipaddress {\n  include v{1,2}\n}\n")
    vip = parse_file(main).nodes[0]
    assert vip.children is not None and _kw(vip.children) == ["10.0.0.1", "10.0.0.2"]


def test_include_definitions_are_global(tmp_path: Path) -> None:
    (tmp_path / "defs.conf").write_text("$IF=bond0\n")
    main = tmp_path / "k.conf"
    main.write_text("include defs.conf\ninterface $IF\n")
    assert parse_file(main).nodes[0].args == ["bond0"]


def test_include_no_match_is_warning(tmp_path: Path) -> None:
    main = tmp_path / "k.conf"
    main.write_text("include nothing/*.conf\nx 1\n")
    res = parse_file(main)
    assert _kw(res.nodes) == ["x"]
    (w,) = res.warnings
    assert w.line == 1 and w.file == str(main) and "no config files matched" in w.message


def test_include_error_inside_included_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "bad.conf").write_text("a {\n b 1\n c {\n")
    main = tmp_path / "k.conf"
    main.write_text("include bad.conf\n")
    with pytest.raises(KaConfSyntaxError) as ei:
        parse_file(main)
    assert ei.value.file == str(tmp_path / "bad.conf") and ei.value.line == 3


def test_include_recursion_is_bounded(tmp_path: Path) -> None:
    main = tmp_path / "k.conf"
    main.write_text("include k.conf\n")
    with pytest.raises(KaConfSyntaxError, match="nesting"):
        parse_file(main)


def test_missing_file_is_error(tmp_path: Path) -> None:
    with pytest.raises(KaConfSyntaxError, match="cannot read"):
        parse_file(tmp_path / "absent.conf")


def test_vip_multi_value_line() -> None:
    """virtual_ipaddress lines keep every word: addr, dev, label, scope..."""
    res = parse_text("virtual_ipaddress {\n 192.168.1.1/24 dev eth0 label eth0:1 scope global\n}\n")
    vip = res.nodes[0]
    assert vip.children is not None
    assert vip.children[0].words() == ["192.168.1.1/24", "dev", "eth0", "label", "eth0:1", "scope", "global"]


def test_crlf_and_tabs() -> None:
    res = parse_text("vrrp_instance VI_1 {\r\n\tpriority\t100\r\n}\r\n")
    assert res.nodes[0].children is not None
    assert res.nodes[0].children[0].words() == ["priority", "100"]


@pytest.mark.parametrize(
    ("seq", "values"),
    [
        ("~SEQ(i, 3)", ["1", "2", "3"]),
        ("~SEQ(i, -2)", ["-1", "-2"]),
        ("~SEQ(i, 3, 1)", ["3", "2", "1"]),
        ("~SEQ(i, 0, 5, 10)", ["0", "5", "10"]),
        ("~SEQ(i, 0x10, 0x11)", ["16", "17"]),
    ],
)
def test_seq_generator(seq: str, values: list[str]) -> None:
    """keepalived's ~SEQ(VAR, [START,] [STEP,] END) TEXT repeats TEXT with $VAR set."""
    res = parse_text(f"x 0\n{seq} vrid $i\n")
    assert [n.args[0] for n in res.nodes[1:]] == values
    assert all(n.keyword == "vrid" and n.line == 2 for n in res.nodes[1:])


def test_seq_with_multiline_definition_builds_blocks() -> None:
    text = "$VI=vrrp_instance VI_${i} { \\\n  virtual_router_id ${i} \\\n}\n~SEQ(i, 1, 2) $VI\n"
    nodes = parse_text(text).nodes
    assert [(n.keyword, n.args) for n in nodes] == [("vrrp_instance", ["VI_1"]), ("vrrp_instance", ["VI_2"])]
    assert [c.words() for n in nodes for c in n.children or []] == [
        ["virtual_router_id", "1"],
        ["virtual_router_id", "2"],
    ]


@pytest.mark.parametrize(
    "line", ["~SEQ(i, 1, -1, 5) x", "~SEQ(i) x", "~SEQ(i, 1, 2)", "~LST(i, a, b) x", "~SEQ(i, 1, 100000) x"]
)
def test_bad_generators_are_errors_with_line(line: str) -> None:
    with pytest.raises(KaConfSyntaxError) as ei:
        parse_text(f"x 1\n{line}\n")
    assert ei.value.line == 2


_PIECES = [
    "a", "b 1", "{", "}", '"x y"', '"', "#c", "!c", "$A=1", "$B=x \\", "$A", "${A}", "${B}", "@a ", "@^a ",
    "\n", " ", "\t", "\\", "\\#", "include nothing*", "~SEQ(i,1,2) x",
]  # fmt: skip
_text = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(_text, st.sampled_from([None, "a", "b"]))
@example('""\n', None)
def test_parser_never_crashes(text: str, config_id: str | None) -> None:
    """Arbitrary text either parses or raises KaConfSyntaxError with a line (never another exception)."""
    try:
        res = parse_text(text, config_id=config_id)
    except KaConfSyntaxError as exc:
        assert exc.line >= 1 and exc.file == "<string>"
        return

    def walk(nodes: list[Node]) -> None:
        for n in nodes:
            assert isinstance(n.keyword, str) and n.line >= 1  # "" is a keyword keepalived calls unknown
            if n.children is not None:
                walk(n.children)

    walk(res.nodes)
