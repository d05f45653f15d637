from fedbrats.research.doc_sections import keep_sections, replace_section, section_of, write_section

DOC = "# Benchmarks\n\nintro\n\n## A\n\nold a\n\n## B\n\nold b\n"


def test_a_section_is_replaced_in_place_and_the_others_stay():
    new = replace_section(DOC, "## A", "## A\n\nnew a\n")
    assert new == "# Benchmarks\n\nintro\n\n## A\n\nnew a\n\n## B\n\nold b\n"
    assert section_of(new, "## B") == "## B\n\nold b\n"


def test_a_missing_section_is_appended():
    assert replace_section(DOC, "## C", "## C\n\nc\n").endswith("old b\n\n## C\n\nc\n")
    assert section_of(DOC, "## C") == ""


def test_sections_written_by_other_commands_are_carried_over(tmp_path):
    rewritten = keep_sections("# Benchmarks\n\nfresh\n\n## A\n\nnew a\n", DOC)
    assert rewritten == "# Benchmarks\n\nfresh\n\n## A\n\nnew a\n\n## B\n\nold b\n"
    path = tmp_path / "doc.md"
    write_section(str(path), "## A", "## A\n\na\n")
    write_section(str(path), "## A", "## A\n\na again\n")
    assert path.read_text() == "\n\n## A\n\na again\n"
