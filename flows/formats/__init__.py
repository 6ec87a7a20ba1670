"""The field's formats in and out: MegaDetector JSON, Camtrap DP, mart CSVs, exported images."""
