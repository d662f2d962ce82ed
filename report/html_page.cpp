// The HTML page itself (html_page.h): a skeleton, the data as JSON, and every script and style
// inlined. A Content-Security-Policy forbids any request: the page works from a file, offline.
#include "report/html_assets.h"
#include "report/html_page.h"

namespace leakscope::report {

std::string html_document(const Report& r, const RenderOptions& opt) {
  std::string page;
  page.reserve(web::kD3.size() + web::kFlameGraph.size() + web::kPageJs.size() + (1u << 20));
  page += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  page += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; "
          "style-src 'unsafe-inline'; img-src data:\">\n";
  page += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  page += "<title>leakscope report: " + html_text(r.path) + "</title>\n";
  page += "<style>\n";
  page += web::kPageCss;
  page += "</style>\n</head>\n<body>\n";
  page += "<noscript><p>This page draws with JavaScript; <code>leakscope report --format text</code> says the same "
          "in words.</p></noscript>\n";
  page += "<main id=\"page\"></main>\n<footer>\n<p>Made by leakscope with ";
  page += html_text(web::kCredits);
  page += ", inlined in this page.</p>\n<details><summary>Licences</summary><pre>";
  page += html_text(web::kLicences);
  page += "</pre></details>\n</footer>\n";
  page += "<script type=\"application/json\" id=\"leakscope-data\">";
  page += script_json(html_data(r, opt));
  page += "</script>\n<script>\n";
  page += web::kD3;
  page += "\n</script>\n<script>\n";
  page += web::kFlameGraph;
  page += "\n</script>\n<script>\n";
  page += web::kPageJs;
  page += "\n</script>\n</body>\n</html>\n";
  return page;
}

}  // namespace leakscope::report
