// Filter expressions of data views: a small, SQL-like condition language parsed into an
// arrow::compute::Expression bound to a table's schema (grammar in docs/views.md).
//
//   price > 10 and (region = 'EU' or region = 'US')
//   name != 'x'        x is null        x is not null        x in (1, 2, 3)
//   not (a >= 2.5)     flag             flag = true          "odd name" <> 'it''s'
//
// filter     := or_expr
// or_expr    := and_expr ("or" and_expr)*
// and_expr   := not_expr ("and" not_expr)*
// not_expr   := "not" not_expr | primary
// primary    := "(" or_expr ")" | operand [ cmp_op operand
//                                          | "is" ["not"] "null"
//                                          | ["not"] "in" "(" literal ("," literal)* ")" ]
// operand    := column | literal
// column     := identifier [A-Za-z_][A-Za-z0-9_]* | "double-quoted" ("" escapes a quote)
// literal    := number | 'single-quoted string' ('' escapes a quote) | true | false | null
// cmp_op     := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//
// Keywords are case-insensitive. A literal compared with a column is cast to the column's
// type by Arrow (so '2024-01-01' compares with a date column); when that cast fails, Arrow's
// usual promotion decides (an int column compared with 2.5 compares as double). Comparing
// with null is refused (use "is null"). Rows whose condition is null are not kept, as in SQL.
//
// Safety: the text is at most kMaxFilterLength bytes, nesting at most kMaxFilterDepth levels,
// an "in" list at most kMaxInItems literals; every error names the position (1-based
// character) and the token, or the unknown column.
//
// Thread-safety: pure function.
#pragma once

#include <cstddef>
#include <string_view>

#include <arrow/compute/expression.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

namespace quiver {

inline constexpr size_t kMaxFilterLength = 4096;
inline constexpr int kMaxFilterDepth = 32;
inline constexpr size_t kMaxInItems = 1000;

/// \brief Parse `text` into a boolean expression over `schema`'s columns, bound to
/// `schema`. Errors are Invalid and name the problem ("filter: unknown column 'prise' at
/// position 1 (columns: price, region)").
arrow::Result<arrow::compute::Expression> ParseFilter(std::string_view text,
                                                      const arrow::Schema& schema);

}  // namespace quiver
