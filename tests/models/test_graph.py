import numpy as np
import pytest

from gaitgraph.errors import ConfigError
from gaitgraph.models.graph import hop_adjacency, hop_distance


@pytest.mark.parametrize(
    ("fixture", "degrees", "sums"),
    [
        ("coco17", [7, 9, 9, 13, 13, 16, 16, 11, 11, 6, 6, 14, 14, 9, 9, 5, 5], [1.9242, 3.5078, 4.5331, 7.0349]),
        (
            "openpose18",
            [14, 18, 13, 8, 4, 13, 8, 4, 13, 8, 4, 13, 8, 4, 10, 10, 5, 5],
            [2.5347, 3.9074, 4.6004, 6.9575],
        ),
    ],
)
def test_reference_checksums(request, fixture, degrees, sums):
    sk = request.getfixturevalue(fixture)
    A = hop_adjacency(sk.num_joints, sk.links, max_hop=3)
    V = sk.num_joints
    assert A.shape == (4, V, V) and A.dtype == np.float32
    hop = hop_distance(V, sk.links, 3)
    assert (hop <= 3).sum(axis=0).tolist() == degrees
    np.testing.assert_allclose(A.sum(axis=(1, 2)), sums, atol=5e-5)
    np.testing.assert_allclose(A.sum(axis=(0, 1)), np.ones(V), atol=1e-6)
    np.testing.assert_allclose(A[0], np.diag(1.0 / np.array(degrees)), atol=1e-7)


def test_partitions_are_disjoint_and_symmetric_in_support():
    links = [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]
    A = hop_adjacency(6, links, max_hop=3)
    support = A > 0
    assert support.sum(axis=0).max() == 1  # each pair in exactly one hop partition (or none)
    assert (support == support.transpose(0, 2, 1)).all()
    assert not support[:, 0, 4].any() and not support[:, 0, 5].any()  # 4 and 5 hops away: outside
    assert support[3, 0, 3]


def test_bad_link_is_reported():
    with pytest.raises(ConfigError, match=r"keypoints.links=\[.*\]: expected joints in 0\.\."):
        hop_adjacency(3, [[0, 5]])
