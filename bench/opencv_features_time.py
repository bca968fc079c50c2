#!/usr/bin/python3
"""opencv_features_time.py — the OpenCV reference of bench/bench-features.sh.

For every image: the bytes are read into memory once, then REPS times (minimum and
median reported) cv2.imdecode(IMREAD_GRAYSCALE) + Sobel x and y (ksize 3, CV_64F,
BORDER_REFLECT_101) + magnitude mean + 256-bin histogram entropy + Laplacian (ksize 1)
variance, i.e. the work of scripts/opencv_features.py, at full resolution.
  opencv_features_time.py THREADS REPS IMAGE...
THREADS = cv2.setNumThreads (1 = one core, as ferry's per-request worker). Times are
CPU time of the calling thread (time.thread_time), so only meaningful with THREADS=1.
Prints: opencv-<THREADS>t <file> <width> <height> <min ms> <median ms>
"""
import os
import sys
import time

import cv2
import numpy as np


def work(buf):
    g = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    b = cv2.BORDER_REFLECT_101
    gx = cv2.Sobel(g, cv2.CV_64F, 1, 0, ksize=3, borderType=b)
    gy = cv2.Sobel(g, cv2.CV_64F, 0, 1, ksize=3, borderType=b)
    s = float(np.mean(np.sqrt(gx * gx + gy * gy)))
    hist = cv2.calcHist([g], [0], None, [256], [0, 256]).ravel()
    p = hist[hist > 0] / g.size
    e = float(-np.sum(p * np.log(p)))
    v = float(cv2.Laplacian(g, cv2.CV_64F, ksize=1, borderType=b).var())
    return g.shape, s, e, v


def main():
    threads, reps = int(sys.argv[1]), int(sys.argv[2])
    if threads > 0:
        cv2.setNumThreads(threads)
    for path in sys.argv[3:]:
        with open(path, "rb") as fh:
            buf = np.frombuffer(fh.read(), dtype=np.uint8)
        ts = []
        for _ in range(reps):
            t0 = time.thread_time()
            shape, _, _, _ = work(buf)
            ts.append((time.thread_time() - t0) * 1000.0)
        ts.sort()
        print("opencv-%dt %s %d %d %.4f %.4f" % (threads, os.path.basename(path), shape[1],
                                                 shape[0], ts[0], ts[len(ts) // 2]))


if __name__ == "__main__":
    main()
