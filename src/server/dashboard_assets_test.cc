#include "server/dashboard_assets.h"

#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include <gtest/gtest.h>

namespace quiver {
namespace {

const DashboardAsset* Find(std::string_view path) {
  for (const auto& asset : DashboardAssets()) {
    if (asset.path == path) return &asset;
  }
  return nullptr;
}

TEST(DashboardAssetsTest, PageIsServedAtRoot) {
  const DashboardAsset* page = Find("/");
  ASSERT_NE(page, nullptr);
  EXPECT_EQ(page->content_type, "text/html; charset=utf-8");
  EXPECT_NE(page->body.find("<!doctype html>"), std::string_view::npos);
}

TEST(DashboardAssetsTest, EveryFileThePageLoadsIsEmbedded) {
  const DashboardAsset* page = Find("/");
  ASSERT_NE(page, nullptr);
  const DashboardAsset* script = Find("/assets/dashboard.js");
  ASSERT_NE(script, nullptr);
  EXPECT_EQ(script->content_type, "text/javascript; charset=utf-8");
  const DashboardAsset* style = Find("/assets/dashboard.css");
  ASSERT_NE(style, nullptr);
  EXPECT_EQ(style->content_type, "text/css; charset=utf-8");
  // The page refers to them relative to "/", so it also works behind a path prefix.
  EXPECT_NE(page->body.find("src=\"assets/dashboard.js\""), std::string_view::npos);
  EXPECT_NE(page->body.find("href=\"assets/dashboard.css\""), std::string_view::npos);
}

TEST(DashboardAssetsTest, PathsAreUniqueAndUnderAssets) {
  std::set<std::string_view> paths;
  for (const auto& asset : DashboardAssets()) {
    EXPECT_TRUE(paths.insert(asset.path).second) << asset.path;
    EXPECT_TRUE(asset.path == "/" || asset.path.starts_with("/assets/")) << asset.path;
    EXPECT_FALSE(asset.body.empty()) << asset.path;
  }
}

TEST(DashboardAssetsTest, BodiesAreTheCommittedFilesByteForByte) {
  const DashboardAsset* script = Find("/assets/dashboard.js");
  ASSERT_NE(script, nullptr);
  std::ifstream file(QUIVER_WEB_DIST "/assets/dashboard.js", std::ios::binary);
  ASSERT_TRUE(file.is_open());
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(script->body, bytes);
}

}  // namespace
}  // namespace quiver
