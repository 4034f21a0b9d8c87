"""Detectors: HOG (OpenCV, CPU default), ONNX Runtime (CPU), TensorRT (GPU) behind `Detector`."""
