"""Shared build settings for quantbench's own code."""

# Strict warnings on our code; LibTorch headers come in as system headers.
QB_COPTS = [
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
]

def qb_test_suite(deps = [], data = [], size = "small", sizes = {}, tags = {}, copts = []):
    """One cc_test per *_test.cc file in the calling package, all on one Catch2 main.

    `sizes` and `tags` map a test's name to its size and Bazel tags ("exclusive" for tests
    that need the machine to themselves)."""
    for src in native.glob(["*_test.cc"]):
        name = src[:-len(".cc")]
        native.cc_test(
            name = name,
            srcs = [src],
            copts = QB_COPTS + copts,
            deps = deps + ["//tests:catch_main"],
            data = data,
            size = sizes.get(name, size),
            tags = tags.get(name, []),
        )
