#!/usr/bin/python3
"""opencv_features.py — the OpenCV oracle for ferry's image measures.

For every image in a folder (default ../shared/images) computes, at FULL resolution,
with python3-opencv (Debian bookworm, OpenCV 4.6):
  luma           cv2.imread(path, cv2.IMREAD_GRAYSCALE)
  sobel_mean     mean of sqrt(gx^2 + gy^2), gx/gy = cv2.Sobel(ksize=3, CV_64F,
                 borderType=BORDER_REFLECT_101)
  entropy        -sum p ln p of the 256-bin histogram (nats)
  laplacian_var  population variance of cv2.Laplacian(ksize=1, CV_64F,
                 BORDER_REFLECT_101); ksize=1 is the 4-neighbour kernel
                 [0 1 0; 1 -4 1; 0 1 0]
and writes CSV (default data/oracle/opencv_features.csv) with %.17g numbers.
A second file, <OUT_CSV stem>_512.csv, holds the same measures after
cv2.resize(INTER_AREA) to ferry's default analysis size (longer side 512, the other
side round(side * 512 / longer); smaller images unchanged).
Run: /usr/bin/python3 scripts/opencv_features.py [IMAGE_DIR] [OUT_CSV]
tests/test-feat-image.c compares ferry at analysis size 0 and 512 with these files.
"""
import csv
import math
import os
import sys

import cv2
import numpy as np


def measures(path, analysis=0):
    g = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if g is None:
        raise RuntimeError(f"{path}: OpenCV cannot read it")
    h, w = g.shape
    longer = max(w, h)
    if analysis and longer > analysis:
        size = (max(1, (w * analysis + longer // 2) // longer),
                max(1, (h * analysis + longer // 2) // longer))
        g = cv2.resize(g, size, interpolation=cv2.INTER_AREA)
    b = cv2.BORDER_REFLECT_101
    gx = cv2.Sobel(g, cv2.CV_64F, 1, 0, ksize=3, borderType=b)
    gy = cv2.Sobel(g, cv2.CV_64F, 0, 1, ksize=3, borderType=b)
    sobel = float(np.mean(np.sqrt(gx * gx + gy * gy)))
    hist = np.bincount(g.ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / g.size
    ent = float(-np.sum(p * np.log(p)))
    lap = cv2.Laplacian(g, cv2.CV_64F, ksize=1, borderType=b)
    return g.shape[1], g.shape[0], sobel, ent, float(lap.var())


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "shared", "images")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "data", "oracle",
                                                              "opencv_features.csv")
    names = sorted(f for f in os.listdir(src)
                   if f.lower().endswith((".jpg", ".jpeg", ".png", ".webp")))
    for analysis, path in ((0, out), (512, os.path.splitext(out)[0] + "_512.csv")):
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["file", "width", "height", "sobel_mean", "entropy", "laplacian_var"])
            for n in names:
                width, height, s, e, l = measures(os.path.join(src, n), analysis)
                w.writerow([n, width, height, "%.17g" % s, "%.17g" % e, "%.17g" % l])
        print(f"{path}: {len(names)} images, OpenCV {cv2.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
