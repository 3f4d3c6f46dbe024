import dataclasses
import pytest
import torch

from glocal.config import ABSConfig, LGCAConfig, WCAConfig
from glocal.geometry.crops import (
    abs_raw_boxes,
    attention_to_grid,
    boxes_to_windows,
    grow_boxes,
    patch_pixel_centres,
    random_square_boxes,
    sample_centres,
    square_windows,
)
from glocal.geometry.plans import abs_plan, wca_boxes
from glocal.seeding import derive_seed, generator_for

SIZES = [(500, 375), (375, 500), (224, 224), (37, 901), (7, 5)]


def peaked_map(g=14, hot=(3, 9)):
    m = torch.full((g, g), 0.001)
    m[hot] = 1.0
    m[hot[0], hot[1] - 1] = 0.9
    return m


def test_seeds_are_stable_and_distinct():
    assert derive_seed(1, "img/a.jpg", "abs") == derive_seed(1, "img/a.jpg", "abs")
    assert len({derive_seed(1, "a", "abs"), derive_seed(1, "b", "abs"), derive_seed(2, "a", "abs"), derive_seed(1, "a", "wca")}) == 4


def test_sample_centres_topk_softmax():
    attention = torch.zeros(14, 14)
    attention.view(-1)[[5, 77, 150]] = torch.tensor([1.0, 0.99, 0.5])
    centres = sample_centres(attention, 4000, k=2, temperature=0.03, generator=generator_for(1, "x", "c"))
    assert set(centres.tolist()) <= {5, 77}  # only the top-2 patches
    p5 = (centres == 5).float().mean().item()
    expected = 1 / (1 + torch.exp(torch.tensor(-0.01 / 0.03)).item())  # softmax([1, .99] / .03)[0]
    assert abs(p5 - expected) < 0.03


def test_uniform_map_gives_random_distinct_centres_per_image():
    flat = torch.full((14, 14), 1 / 196)
    a = sample_centres(flat, 60, 20, 0.03, generator_for(1, "a", "c"))
    b = sample_centres(flat, 60, 20, 0.03, generator_for(1, "b", "c"))
    assert len(set(a.tolist())) > 5 and set(a.tolist()) != set(b.tolist())
    assert not set(a.tolist()) <= set(range(20))  # not simply the first k patches


def test_patch_pixel_centre_official_formula():
    # W=500, g=14: j=3 -> x_min=int(3*500/14)=107, x_max=107+int(500/14)=142, centre 124
    cx, cy = patch_pixel_centres(torch.tensor([3 * 14 + 3, 13 * 14 + 13]), 14, 500, 375)
    assert cx.tolist() == [124, (int(13 * 500 / 14) + min(int(13 * 500 / 14) + 35, 500)) // 2]
    assert cy[0].item() == (int(3 * 375 / 14) + int(3 * 375 / 14) + int(375 / 14)) // 2
    # centre_crop frame: offsets by the crop origin on the long side
    cx2, cy2 = patch_pixel_centres(torch.tensor([0]), 14, 500, 375, frame="center_crop")
    assert cx2.item() == (500 - 375) // 2 + (0 + int(375 / 14)) // 2


@pytest.mark.parametrize("size", SIZES)
def test_abs_raw_boxes_inside_and_sized(size):
    w, h = size
    g = generator_for(3, "img", "s")
    cx = torch.randint(0, w, (200,), generator=g)
    cy = torch.randint(0, h, (200,), generator=g)
    boxes = abs_raw_boxes(cx, cy, w, h, 0.5, 0.9, generator_for(3, "img", "size"))
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (bw >= 1).all() and (bh >= 1).all()
    # unclamped side is 2*(cw//2) <= cw <= int(0.9 W)
    assert (bw <= max(int(0.9 * w), 1)).all() and (bh <= max(int(0.9 * h), 1)).all()


def test_abs_raw_box_exact_values_unclamped():
    cx, cy = torch.tensor([250]), torch.tensor([180])
    g = generator_for(0, "x", "y")
    boxes = abs_raw_boxes(cx, cy, 500, 375, 0.5, 0.9, g)
    g2 = generator_for(0, "x", "y")
    cw = torch.randint(250, 451, (1,), generator=g2).item()
    ch = torch.randint(187, 338, (1,), generator=g2).item()
    x0, y0 = max(0, 250 - cw // 2), max(0, 180 - ch // 2)
    assert boxes[0].tolist() == [x0, y0, min(500, 250 + cw // 2), min(375, 180 + ch // 2)]


def test_width_and_height_drawn_independently():
    g = generator_for(0, "img", "size")
    boxes = abs_raw_boxes(torch.full((300,), 500), torch.full((300,), 500), 1000, 1000, 0.3, 0.5, g)
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (bw != bh).float().mean() > 0.8


@pytest.mark.parametrize("grid", [7, 14, 16])
def test_square_windows_clamped_on_all_four_borders(grid):
    corners = torch.tensor([0, 0, grid - 1, grid - 1]), torch.tensor([0, grid - 1, 0, grid - 1])
    windows = square_windows(corners[0], corners[1], grid, 0.6, 0.9, generator_for(0, "w", "s"))
    assert (windows[:, :2] >= 0).all() and (windows[:, 2:] <= grid).all()
    assert windows[0, 0] == 0 and windows[0, 1] == 0  # top-left touches left and top
    assert windows[3, 2] == grid and windows[3, 3] == grid  # bottom-right touches right and bottom
    assert windows[1, 2] == grid and windows[2, 3] == grid


def test_square_window_exact_for_g14():
    # centre (7, 7): s in 8..12, half = s // 2, cells [7 - half, 7 + half + 1)
    windows = square_windows(torch.tensor([7] * 500), torch.tensor([7] * 500), 14, 0.6, 0.9, generator_for(1, "a", "b"))
    sides = (windows[:, 2] - windows[:, 0]).tolist()
    assert set(sides) == {9, 11, 13}  # 2*(s//2)+1 for s in 8..12
    assert ((windows[:, 2] - windows[:, 0]) == (windows[:, 3] - windows[:, 1])).all()


def test_attention_to_grid_centre_rule_maps_through_normalised_coordinates():
    idx = torch.tensor([0, 15 * 16 + 15, 8 * 16 + 8])
    rows, cols = attention_to_grid(idx, 16, 14, "centre")
    assert rows.tolist() == [0, 13, int(8.5 * 14 / 16)] and cols.tolist() == rows.tolist()
    same = attention_to_grid(torch.arange(196), 14, 14, "centre")
    assert same[0].tolist() == (torch.arange(196) // 14).tolist()


def test_attention_to_grid_official_rule_is_map_index_14_to_16():
    """DINO's 14x14 map onto CLIP L/14's 16x16 grid: the official map_index_14_to_16 takes
    row * 16 // 14, so rows 0..13 go to 0,1,2,3,4,5,6,8,9,10,11,12,13,14 (by hand); the centre
    rule gives 0,1,2,4,5,6,7,8,9,10,12,13,14,15: rows 3-6 and 10-13 one cell apart."""
    rows = torch.arange(14)
    official, _ = attention_to_grid(rows * 14, 14, 16)  # column 0, row r
    assert official.tolist() == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14]
    centre, _ = attention_to_grid(rows * 14, 14, 16, "centre")
    assert centre.tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15]
    assert [r for r in range(14) if official[r] != centre[r]] == [3, 4, 5, 6, 10, 11, 12, 13]
    # the flat index: row 5, column 12 -> (5*16//14, 12*16//14) = (5, 13)
    r, c = attention_to_grid(torch.tensor([5 * 14 + 12]), 14, 16)
    assert (r.item(), c.item()) == (5, 13)
    # 14 -> 7 (B/32) is row // 2 under both rules
    for rule in ("official", "centre"):
        assert attention_to_grid(rows * 14, 14, 7, rule)[0].tolist() == (rows // 2).tolist()


def test_code_pairing_draws_feature_centres_among_the_official_top_20():
    """The official feature-space crop fixes top-20 whatever --top_k: with top_k=5 and
    feature_top_k=20 the windows centre on patches ranked 6..20 too; with feature_top_k=None they
    stay on the top 5."""
    attention = torch.arange(196, dtype=torch.float).reshape(14, 14)  # patch p has value p: top 5 = 191..195
    config = ABSConfig(n_crops=400, top_k=5, pairing="code", centre_temperature=100.0, window_min=0.1, window_max=0.1)
    def centre_cells(cfg):
        w = abs_plan(attention, 224, 224, 14, cfg, "img").windows
        return set((((w[:, 1] + w[:, 3] - 1) // 2) * 14 + (w[:, 0] + w[:, 2] - 1) // 2).tolist())
    assert centre_cells(config) <= set(range(191, 196))
    wide = centre_cells(dataclasses.replace(config, feature_top_k=20))
    assert wide <= set(range(176, 196)) and len(wide - set(range(191, 196))) >= 10


def test_boxes_to_windows_through_centre_crop():
    # square image: the whole image maps onto the whole grid
    assert boxes_to_windows(torch.tensor([[0, 0, 224, 224]]), 224, 224, 14).tolist() == [[0, 0, 14, 14]]
    # 500x250 landscape: the crop is x in [125, 375); a box on its left half maps to cols [0, 7)
    assert boxes_to_windows(torch.tensor([[125, 0, 250, 250]]), 500, 250, 14).tolist() == [[0, 0, 7, 14]]
    # a box entirely left of the crop keeps the nearest column
    w = boxes_to_windows(torch.tensor([[0, 0, 100, 250]]), 500, 250, 14)
    assert w.tolist() == [[0, 0, 1, 14]]


@pytest.mark.parametrize("size", SIZES)
def test_wca_boxes_square_inside(size):
    w, h = size
    boxes = random_square_boxes(w, h, 300, 0.1, 0.9, generator_for(0, "i", "wca"))
    sides = boxes[:, 2] - boxes[:, 0]
    assert (sides == boxes[:, 3] - boxes[:, 1]).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    assert (sides >= max(1, int(0.1 * min(w, h)))).all() and (sides <= max(1, int(0.9 * min(w, h)))).all()


def test_grow_boxes_about_centre_and_clamped():
    grown = grow_boxes(torch.tensor([[40, 40, 60, 60], [0, 0, 90, 100]]), 1.5, 100, 100)
    assert grown[0].tolist() == [35, 35, 65, 65]
    assert grown[1].tolist() == [0, 0, 100, 100]
    again = grow_boxes(grown, 1.5, 100, 100)
    assert again[1].tolist() == [0, 0, 100, 100]  # the whole image stops growing


@pytest.mark.parametrize("pairing", ["paper", "code"])
def test_abs_plan_deterministic_per_image(pairing):
    cfg = ABSConfig(pairing=pairing)
    a1 = abs_plan(peaked_map(), 500, 375, 14, cfg, "img/1.jpg")
    a2 = abs_plan(peaked_map(), 500, 375, 14, cfg, "img/1.jpg")
    b = abs_plan(peaked_map(), 500, 375, 14, cfg, "img/2.jpg")
    assert torch.equal(a1.raw_boxes, a2.raw_boxes) and torch.equal(a1.windows, a2.windows)
    assert not torch.equal(a1.raw_boxes, b.raw_boxes)
    assert a1.raw_boxes.shape == (60, 4) and a1.windows.shape == (60, 4)
    # centres come from the two hot patches only
    assert set(a1.centres.tolist()) <= {3 * 14 + 9, 3 * 14 + 8}


def test_paper_pairing_shares_centre_code_pairing_does_not():
    m = peaked_map()
    paper = abs_plan(m, 224, 224, 14, ABSConfig(pairing="paper"), "x")
    expected = boxes_to_windows(paper.raw_boxes, 224, 224, 14)
    assert torch.equal(paper.windows, expected)
    code = abs_plan(m, 224, 224, 14, ABSConfig(pairing="code"), "x")
    assert not torch.equal(code.windows, paper.windows)
    sides = code.windows[:, 2] - code.windows[:, 0]
    assert ((sides >= 1) & (sides <= 13)).all()


def test_wca_plan_seeded():
    assert torch.equal(wca_boxes(300, 200, WCAConfig(), "a"), wca_boxes(300, 200, WCAConfig(), "a"))
    assert not torch.equal(wca_boxes(300, 200, WCAConfig(), "a"), wca_boxes(300, 200, WCAConfig(), "b"))
    assert not torch.equal(wca_boxes(300, 200, LGCAConfig(), "a", "lgca"), wca_boxes(300, 200, LGCAConfig(), "a"))


def test_paper_pairing_windows_follow_a_stretching_backbones_frame(tmp_path):
    """SigLIP / ALIGN resize the whole image to a square: on a 400x200 image the box [100, 0, 300,
    200] spans x 3.5..10.5 and y 0..14 cells of a 14-grid (edges rounded half up: [4, 0, 11, 14]),
    not the centre square's [0, 0, 14, 14]. A processor that crops after resizing covers less."""
    from glocal.backbones import load_backbone
    from glocal.geometry.crops import covered_region
    from glocal.geometry.plans import input_frame
    from glocal.tiny import build_tiny_siglip

    box = torch.tensor([[100, 0, 300, 200]])
    assert boxes_to_windows(box, 400, 200, 14, covered_region(400, 200, stretch=True)).tolist() == [[4, 0, 11, 14]]
    assert boxes_to_windows(box, 400, 200, 14).tolist() == [[0, 0, 14, 14]]  # CLIP: the centre 200x200 square
    # resize 256, crop 224 (crop fraction 7/8): the tokens cover the centre 224 px of a 256 px image
    assert covered_region(256, 256, crop_fraction=224 / 256) == (16.0, 16.0, 224.0, 224.0)
    assert boxes_to_windows(torch.tensor([[0, 0, 128, 128]]), 256, 256, 14, covered_region(256, 256, crop_fraction=224 / 256)).tolist() == [[0, 0, 7, 7]]
    siglip = load_backbone(str(build_tiny_siglip(tmp_path / "siglip")))
    assert input_frame(siglip.spec) == {"input_stretch": True, "input_crop_fraction": 1.0}
    plan = abs_plan(peaked_map(), 400, 200, siglip.grid, ABSConfig(n_crops=8), "img", **input_frame(siglip.spec))
    assert plan.windows.tolist() == boxes_to_windows(plan.raw_boxes, 400, 200, siglip.grid, covered_region(400, 200, stretch=True)).tolist()
    assert plan.windows.tolist() != boxes_to_windows(plan.raw_boxes, 400, 200, siglip.grid).tolist()
