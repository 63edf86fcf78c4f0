#pragma once
// Include this instead of <catch2/catch.hpp>: LibTorch's headers pull in glog,
// whose CHECK macro collides with Catch2's. Load glog first, then let Catch2 win.

#include <c10/util/Logging.h>
#undef CHECK

#include <catch2/catch.hpp>
