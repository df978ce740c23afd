"""evaluation/inference.py: the predictor equals ToTensor + Normalize + model, in order, for images and videos."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from evaluation.inference import InferenceSettings, Predictor
from tests._evaluation_data import direct_logits, marked_images, tiny_classifier

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
CPU = InferenceSettings(device="cpu", batch_size=4, chunk_images=6, workers=0)


def test_predictor_matches_totensor_normalize_and_keeps_order():
    model = tiny_classifier(7)
    images = marked_images(11)
    predictor = Predictor(model, MEAN, STD, CPU)  # batches of 4, chunks of 6: 11 = 4 + 2 | 4 + 1
    streamed = torch.cat(list(predictor.over_array(images)))
    torch.testing.assert_close(streamed, direct_logits(model, images, MEAN, STD), rtol=1e-5, atol=1e-5)
    videos = np.stack([images[:5], images[5:10]], axis=1)  # (5, 2, 32, 32, 3): 2-frame videos
    per_video = torch.cat(list(predictor.over_video_array(videos)))
    assert per_video.shape == (5, 2, 7)
    torch.testing.assert_close(per_video[:, 1], streamed[5:10], rtol=1e-5, atol=1e-5)


def test_float32_is_the_default_and_bf16_is_explicit_and_recorded():
    assert InferenceSettings().amp == "off" and InferenceSettings(device="cuda").amp_dtype() is None
    fp32 = InferenceSettings(device="cpu").precision()
    assert fp32 == {"mode": "float32", "autocast_dtype": None, "tf32": False, "summary": "float32"}
    cuda = InferenceSettings(device="cuda").precision()  # describes only: nothing runs on the device
    assert cuda["mode"] == "float32" and cuda["tf32"] and "TF32" in cuda["summary"]
    bf16 = InferenceSettings(device="cpu", amp="bf16").precision()
    assert bf16["mode"] == "bf16-autocast" and bf16["autocast_dtype"] == "bfloat16" and "--amp bf16" in bf16["summary"]
    with pytest.raises(ValueError, match="amp='auto'; valid: off, bf16, fp16"):
        InferenceSettings(amp="auto").amp_dtype()


def test_bf16_autocast_changes_logits_float32_reproduces_the_reference():
    model = tiny_classifier(7)
    images = marked_images(11)
    reference = direct_logits(model, images, MEAN, STD)
    fp32 = torch.cat(list(Predictor(model, MEAN, STD, CPU).over_array(images)))
    bf16 = torch.cat(list(Predictor(model, MEAN, STD, dataclasses.replace(CPU, amp="bf16")).over_array(images)))
    torch.testing.assert_close(fp32, reference, rtol=1e-5, atol=1e-5)
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)  # bf16 matmuls: visibly rounded
    torch.testing.assert_close(bf16, reference, rtol=0.05, atol=0.05)
