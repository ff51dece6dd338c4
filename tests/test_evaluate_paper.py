"""Paper numbers live in one module, each with its table, row and protocol."""

import pathlib
import re

from neurrator.evaluate import paper


def test_every_number_has_a_table_row_and_protocol():
    for n in paper.numbers():
        assert n.table and n.row and n.column and n.protocol in paper.PROTOCOLS
        assert n.protocol in n.source
    assert paper.lookup("A1", "Neurrator (ours)", "sparse_random").value == 0.426
    assert paper.for_method("cebra-512", "A3", "mean_r1").value == 0.103
    assert paper.for_method("cebra-512", "A1", "front_only").row == "CEBRA + LLaVA"
    assert paper.for_method("pca_knn", "A2", "cka") is None  # the paper has no such row


def test_cebras_own_protocol_is_never_under_the_neurrator_papers_tables():
    cebra = paper.peer_results(paper.CEBRA)
    assert {n.value for n in cebra} == {0.94, 0.99, 0.82, 0.92}
    for table in ("A1", "A2", "A3"):
        assert all(n.protocol == paper.NEURRATOR for row in paper.table(table).values() for n in row.values())


def test_no_paper_number_is_typed_in_stages_or_tables():
    src = pathlib.Path(paper.__file__).parents[1]
    typed = re.compile(r"0\.426|0\.367|0\.890|38\.8|0\.103|94–99|94%/99%")
    for path in [*src.joinpath("stages").glob("*.py"), *src.joinpath("evaluate").glob("*.py")]:
        if path.name != "paper.py":
            assert not typed.search(path.read_text()), path
