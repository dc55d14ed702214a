#include "exec/sql_text.h"

#include <gtest/gtest.h>

namespace quiver {
namespace {

TEST(NormalizeSql, CollapsesWhitespaceAndComments) {
  auto d = SqlDialect::kSqlite;
  EXPECT_EQ(NormalizeSql("  SELECT  a,\n\tb  FROM t ;  ", d), "SELECT a, b FROM t");
  EXPECT_EQ(NormalizeSql("SELECT a -- the a column\nFROM t", d), "SELECT a FROM t");
  EXPECT_EQ(NormalizeSql("SELECT /* hi */ a FROM/**/t", d), "SELECT a FROM t");
  // Case is kept: keywords are not folded.
  EXPECT_NE(NormalizeSql("SELECT a FROM t", d), NormalizeSql("select a from t", d));
}

TEST(NormalizeSql, KeepsLiteralsAndIdentifiersVerbatim) {
  auto d = SqlDialect::kPostgresql;
  EXPECT_EQ(NormalizeSql("SELECT 'a  -- b', \"x  y\" FROM t", d), "SELECT 'a  -- b', \"x  y\" FROM t");
  EXPECT_EQ(NormalizeSql("SELECT 'it''s   ok'", d), "SELECT 'it''s   ok'");
  EXPECT_EQ(NormalizeSql("SELECT $$ a  /* not a comment */ $$", d),
            "SELECT $$ a  /* not a comment */ $$");
  EXPECT_EQ(NormalizeSql("SELECT $tag$ x $$ y $tag$  ,  1", d), "SELECT $tag$ x $$ y $tag$ , 1");
  EXPECT_EQ(NormalizeSql("SELECT E'a\\'  b'", d), "SELECT E'a\\'  b'");
  EXPECT_EQ(NormalizeSql("SELECT a FROM t WHERE x = $1", d), "SELECT a FROM t WHERE x = $1");
  EXPECT_EQ(NormalizeSql("SELECT /* outer /* inner */ still */ 1", d), "SELECT 1");
  // Different literals stay different.
  EXPECT_NE(NormalizeSql("SELECT 'a b'", d), NormalizeSql("SELECT 'a  b'", d));
}

TEST(FindNondeterministic, PerDialect) {
  auto lite = SqlDialect::kSqlite;
  auto pg = SqlDialect::kPostgresql;
  EXPECT_EQ(FindNondeterministic("SELECT random() FROM t", lite), "random()");
  EXPECT_EQ(FindNondeterministic("SELECT RANDOM ( ) FROM t", lite), "random()");
  EXPECT_EQ(FindNondeterministic("SELECT datetime('now')", lite), "'now'");
  EXPECT_EQ(FindNondeterministic("SELECT CURRENT_TIMESTAMP", lite), "current_timestamp");
  EXPECT_EQ(FindNondeterministic("SELECT now()", pg), "now()");
  EXPECT_EQ(FindNondeterministic("SELECT clock_timestamp()", pg), "clock_timestamp()");
  EXPECT_EQ(FindNondeterministic("SELECT nextval('s')", pg), "nextval()");
  EXPECT_FALSE(FindNondeterministic("SELECT 'random()' AS s, now_col FROM t", pg).has_value());
  EXPECT_FALSE(FindNondeterministic("SELECT a -- random()\nFROM t", pg).has_value());
  EXPECT_FALSE(FindNondeterministic("SELECT my_random(1), randomness FROM t", pg).has_value());
  EXPECT_FALSE(FindNondeterministic("SELECT count(*) FROM events WHERE day > 3", lite).has_value());
  EXPECT_FALSE(FindNondeterministic("SELECT pg_sleep(1), x FROM t", pg).has_value());
}

}  // namespace
}  // namespace quiver
