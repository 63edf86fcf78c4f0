"""Shared build settings for quantbench's own code."""

# Strict warnings on our code; LibTorch headers come in as system headers.
QB_COPTS = [
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
]

def qb_test_suite(deps = [], data = [], size = "small", sizes = {}, copts = []):
    """One cc_test per *_test.cc file in the calling package, all on one Catch2 main."""
    for src in native.glob(["*_test.cc"]):
        name = src[:-len(".cc")]
        native.cc_test(
            name = name,
            srcs = [src],
            copts = QB_COPTS + copts,
            deps = deps + ["//tests:catch_main"],
            data = data,
            size = sizes.get(name, size),
        )
