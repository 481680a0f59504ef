"""Single-visit mosaics (SVM): drizzlepac runsinglehap on the hapgpu engines (hap-pipeline.md §1)."""
