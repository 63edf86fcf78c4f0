#include "experiments/table.h"

#include "tests/catch.h"

namespace qb {
namespace {

TEST_CASE("markdown and CSV tables carry every column") {
  std::vector<TableRow> rows = {{"fp32", 0.3101, 91.234, 99.87, 0.41234, 1},
                                {"int8, \"graph\"", 0.09, 90.5, 99.8, 0.2, 2}};
  CHECK(markdown_table(rows) ==
        "| variant | size (MB) | top-1 (%) | top-5 (%) | latency (ms/image) | threads |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: |\n"
        "| fp32 | 0.310 | 91.23 | 99.87 | 0.412 | 1 |\n"
        "| int8, \"graph\" | 0.090 | 90.50 | 99.80 | 0.200 | 2 |\n");
  CHECK(csv_table(rows) ==
        "variant,size_mb,top1_percent,top5_percent,latency_ms,threads\n"
        "fp32,0.310100,91.2340,99.8700,0.412340,1\n"
        "\"int8, \"\"graph\"\"\",0.090000,90.5000,99.8000,0.200000,2\n");
}

}  // namespace
}  // namespace qb
