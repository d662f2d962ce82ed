// `/metrics` of `leakscope run|attach --serve` (docs/serve.md): a Report as Prometheus text
// exposition format 0.0.4. The metric names, types and help lines are the one table
// metric_table(); docs/serve.md's metric table is checked against it by tests/e2e/test_serve.py.
#pragma once
#include <span>
#include <string>

#include "report/report.h"

namespace leakscope::report {

struct MetricDef {
  const char* name;
  const char* type;    // gauge | counter
  const char* labels;  // the label names, comma-separated; "" for none
  const char* help;    // one line, the `# HELP` text
};

std::span<const MetricDef> metric_table();

// Every metric of the table for `r` (a table entry with nothing to say, e.g. asyncio tasks in a
// program without asyncio, has its HELP and TYPE lines but no sample). `scrape_s` is how long
// building `r` took.
std::string prometheus_text(const Report& r, double scrape_s);

}  // namespace leakscope::report
