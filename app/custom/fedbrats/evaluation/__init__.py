"""Evaluating and shipping a trained model: segmentation of new cases, their scores, the cross-site report, the model
card and the TorchScript and ONNX exports."""
