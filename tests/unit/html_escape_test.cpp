// The HTML report's data block (report/html_page.h): no name from a capture can close the
// <script type="application/json"> element, start markup or end a JavaScript line, and the
// block still parses back to the same document.
#include <gtest/gtest.h>

#include <string>

#include "report/html_page.h"

namespace {

using leakscope::report::html_text;
using leakscope::report::script_json;

TEST(HtmlEscape, ScriptJsonHasNoMarkupAndRoundTrips) {
  const std::string hostile = "</script><script>alert(1)</script><!-- & \xe2\x80\xa8 \xe2\x80\xa9 'x' \"y\"";
  nlohmann::json doc = {{"frames", {hostile, "plain"}}, {"n", 3}};
  const std::string out = script_json(doc);
  EXPECT_EQ(out.find('<'), std::string::npos) << out;
  EXPECT_EQ(out.find('>'), std::string::npos) << out;
  EXPECT_EQ(out.find('&'), std::string::npos) << out;
  EXPECT_EQ(out.find("\xe2\x80\xa8"), std::string::npos) << out;
  EXPECT_EQ(out.find("\xe2\x80\xa9"), std::string::npos) << out;
  EXPECT_NE(out.find("\\u003c/script\\u003e"), std::string::npos) << out;
  EXPECT_NE(out.find("\\u2028"), std::string::npos) << out;
  EXPECT_EQ(nlohmann::json::parse(out), doc);
}

TEST(HtmlEscape, InvalidUtf8IsReplacedNotThrown) {
  nlohmann::json doc = {{"name", std::string("bad \xff\xfe name")}};
  std::string out;
  ASSERT_NO_THROW(out = script_json(doc));
  EXPECT_EQ(nlohmann::json::parse(out)["name"], "bad \xef\xbf\xbd\xef\xbf\xbd name");
}

TEST(HtmlEscape, HtmlText) {
  EXPECT_EQ(html_text("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
}

}  // namespace
