"""evaluation/inference.py: the predictor equals ToTensor + Normalize + model, in order, for images and videos."""

from __future__ import annotations

import numpy as np
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
