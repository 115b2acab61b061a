"""Constants shared by the test layers' conftest files (importable: tests/ is on sys.path)."""

# Tiny data: the C1 compiler alone and the serial collector start and warm up a JVM faster
# than the tiered C2 compiler and G1, which only pay off on long, large jobs.
TEST_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
