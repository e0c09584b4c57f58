/*
 * test_strmatch.c - tests for bindings/lua_strmatch.c (step-budgeted string pattern functions).
 *
 * (a) every case is run against the stock string.find/match/gmatch/gsub saved before
 *     strmatch_install() and against the installed budgeted versions; results (values, types,
 *     error messages) must be identical; a seeded random differential fuzz does the same;
 * (b) pathological patterns (catastrophic backtracking, quadratic %b, long classes, plain-find
 *     and back-reference blowups, escape-heavy gsub replacements) fail fast with the budget error;
 * (c) heavy but legitimate work over a 1 MB subject still succeeds under the 10,000,000 budget.
 * Standalone: prints "N passed, N failed" last and exits non-zero on any failure.
 */
#include "../../bindings/lua_strmatch.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUDGET 10000000

static int passed, failed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            passed++;                                                                              \
        } else {                                                                                   \
            failed++;                                                                              \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

/* Does `s` end with `suffix`? (Lua errors raised in C carry the caller's "chunk:line: " prefix.) */
static int ends_with(const char *s, const char *suffix)
{
    size_t ls = s ? strlen(s) : 0, lx = strlen(suffix);
    return s && ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Lua-side helpers: S holds the stock functions, B the budgeted ones (set after install). */
static const char *harness =
    "S = {find = string.find, match = string.match, gmatch = string.gmatch, gsub = string.gsub}\n"
    "local function ser(v, seen)\n"
    "  local t = type(v)\n"
    "  if t == 'string' then return 's' .. string.format('%q', v)\n"
    "  elseif t == 'number' then return math.type(v) .. ':' .. string.format('%.17g', v)\n"
    "  elseif t == 'table' then\n"
    "    if seen[v] then return 'cycle' end\n"
    "    seen[v] = true\n"
    "    local keys = {}\n"
    "    for k in pairs(v) do keys[#keys + 1] = k end\n"
    "    table.sort(keys, function(a, b)\n"
    "      local ta, tb = type(a), type(b)\n"
    "      if ta ~= tb then return ta < tb end\n"
    "      return a < b\n"
    "    end)\n"
    "    local out = {}\n"
    "    for _, k in ipairs(keys) do out[#out + 1] = ser(k, seen) .. '=' .. ser(v[k], seen) end\n"
    "    return '{' .. table.concat(out, ',') .. '}'\n"
    "  else return t .. ':' .. tostring(v) end\n"
    "end\n"
    "function ser_all(...)\n"
    "  local n = select('#', ...)\n"
    "  local out = {tostring(n)}\n"
    "  for i = 1, n do out[#out + 1] = ser((select(i, ...)), {}) end\n"
    "  return table.concat(out, ' | ')\n"
    "end\n"
    /* collect(it): drain a gmatch iterator (at most 1000 calls) into a list of packed results */
    "function collect(it)\n"
    "  local t = {}\n"
    "  for _ = 1, 1000 do\n"
    "    local r = table.pack(it())\n"
    "    if r.n == 0 or r[1] == nil then t.stop = r.n; return t end\n"
    "    t[#t + 1] = r\n"
    "  end\n"
    "  t.truncated = true\n"
    "  return t\n"
    "end\n"
    /* run_case(src): run a case body with F = S and with F = B and compare everything;
     * returns identical?, description, both succeeded? */
    "function run_case(src)\n"
    "  local chunk, err = load('local F = ...\\n' .. src, '=case', 't')\n"
    "  if not chunk then return false, 'load error: ' .. err end\n"
    "  local ra = table.pack(pcall(chunk, S))\n"
    "  local rb = table.pack(pcall(chunk, B))\n"
    "  local a = ser_all(table.unpack(ra, 1, ra.n))\n"
    "  local b = ser_all(table.unpack(rb, 1, rb.n))\n"
    "  local both_ok = ra[1] and rb[1]\n"
    "  if a == b then return true, a, both_ok end\n"
    "  return false, 'stock:    ' .. a .. '\\n    budgeted: ' .. b, both_ok\n"
    "end\n"
    /* fuzz(n, seed): random differential test; returns comparisons, mismatches, first diff */
    "function fuzz(n, seed)\n"
    "  math.randomseed(seed)\n"
    "  local R = math.random\n"
    "  local atoms = {'a', 'b', 'c', '.', '%a', '%d', '%s', '%w', '%p', '[ab]', '[^a]',\n"
    "    '[a-c]', '[%d%s]', '%%', '%.', '%(', 'x', '1', ' ', '%f[a]', '%f[%w]', '%f[^%s]',\n"
    "    '%b()', '%bab', '()', '%1', '%2', '[]a]', '[^]]', '$', '^', '%z', '\\0'}\n"
    "  local quants = {'', '', '', '*', '+', '-', '?'}\n"
    "  local salpha = {'a', 'b', 'c', '(', ')', ' ', '1', '2', 'x', '%', '.', ']', '\\0', 'A'}\n"
    "  local function item(depth)\n"
    "    local r = R(10)\n"
    "    if r == 1 and depth < 3 then\n"
    "      local inner = {}\n"
    "      for i = 1, R(0, 3) do inner[i] = item(depth + 1) end\n"
    "      return '(' .. table.concat(inner) .. ')'\n"
    "    end\n"
    "    local a = atoms[R(#atoms)]\n"
    "    if a:sub(1, 2) == '%b' or a:sub(1, 2) == '%f' or a == '()' or a:match('^%%%d') then\n"
    "      return a\n"
    "    end\n"
    "    return a .. quants[R(#quants)]\n"
    "  end\n"
    "  local function pattern()\n"
    "    local t = {}\n"
    "    if R(4) == 1 then t[1] = '^' end\n"
    "    for _ = 1, R(0, 5) do t[#t + 1] = item(0) end\n"
    "    if R(5) == 1 then t[#t + 1] = '$' end\n"
    "    if R(40) == 1 then t[#t + 1] = ({'%', '[', '(', ')', '%b', '%f', '[a'})[R(7)] end\n"
    "    return table.concat(t)\n"
    "  end\n"
    "  local function subject()\n"
    "    local t = {}\n"
    "    for i = 1, R(0, 14) do t[i] = salpha[R(#salpha)] end\n"
    "    return table.concat(t)\n"
    "  end\n"
    "  local inits = {false, 1, 2, 3, 0, -1, -2, -100, 5, 14, 15, 16, math.maxinteger,\n"
    "    math.mininteger}\n"
    "  local repls = {'%0-', '<%1>', 'x', '', '%%', '%2', 7,\n"
    "    function(a, b) return b or a end,\n"
    "    function(a) if a == '' then return false end return '[' .. tostring(a) .. ']' end,\n"
    "    {a = 'A', b = false, [1] = 'one', c = 3}}\n"
    "  local calls = {\n"
    "    function(F, s, p, i) return F.find(s, p, i) end,\n"
    "    function(F, s, p, i) return F.find(s, p, i, true) end,\n"
    "    function(F, s, p, i) return F.match(s, p, i) end,\n"
    "    function(F, s, p, i) return collect(F.gmatch(s, p, i)) end,\n"
    "    function(F, s, p, i, r, m) return F.gsub(s, p, r, m) end,\n"
    "  }\n"
    "  local cmp, bad, first = 0, 0, nil\n"
    "  for _ = 1, n do\n"
    "    local s, p = subject(), pattern()\n"
    "    local i = inits[R(#inits)] or nil\n"
    "    local r = repls[R(#repls)]\n"
    "    local m = R(3) == 1 and R(-1, 3) or nil\n"
    "    for _, f in ipairs(calls) do\n"
    "      local a = ser_all(pcall(f, S, s, p, i, r, m))\n"
    "      local b = ser_all(pcall(f, B, s, p, i, r, m))\n"
    "      cmp = cmp + 1\n"
    "      if a ~= b then\n"
    "        bad = bad + 1\n"
    "        first = first or string.format('s=%q p=%q i=%s: stock %s budgeted %s',\n"
    "          s, p, tostring(i), a, b)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  return cmp, bad, first\n"
    "end\n";

/* Behaviour-equivalence cases: each is a chunk body run with F = stock and F = budgeted. */
static const char *cases[] = {
    /* find: plain and the nospecials fast path */
    "return F.find('hello world', 'o w')",
    "return F.find('hello', 'l')",
    "return F.find('hello', 'xyz')",
    "return F.find('hello', '')",
    "return F.find('', '')",
    "return F.find('', 'a')",
    "return F.find('hello', '', 5)",
    "return F.find('hello', '', 6)",
    "return F.find('hello', '', 7)",
    "return F.find('a.b', '.', 1, true)",
    "return F.find('a.b', '.')",
    "return F.find('a.b', '%.')",
    "return F.find('a+b', '+', 1, true)",
    "return F.find('a+b', 'a+b')",
    "return F.find('a(b', '(', 1, true)",
    "return F.find('a[b]', '[b]', 1, true)",
    "return F.find('abc', 'b', 1, false)",
    "return F.find('abc', 'b', 1, nil)",
    "return F.find('abc', 'b', 1, 0)",
    "return F.find('a\\0b\\0c', '\\0c')",
    "return F.find('a\\0b', 'b\\0')",
    "return F.find('a\\0*b', '\\0*')",
    "return F.find('a\\0b', '\\0b', 1, true)",
    "return F.find('abab', 'ab', 2)",
    "return F.find('aaaaab', 'aab')",
    "return F.find(string.rep('ab', 100) .. 'abc', 'abc')",
    "return F.find(12345, 34)",
    "return F.find(12.5, '.', 1, true)",
    /* init values: negative, zero, huge */
    "return F.find('abc', 'b', -1)",
    "return F.find('abc', 'b', -2)",
    "return F.find('abc', 'b', -3)",
    "return F.find('abc', 'b', -100)",
    "return F.find('abc', 'b', 0)",
    "return F.find('abc', 'b', math.mininteger)",
    "return F.find('abc', 'b', math.maxinteger)",
    "return F.find('abc', '', math.maxinteger)",
    "return F.find('abc', '', 4)",
    "return F.find('abc', '()', 4)",
    "return F.match('hello', 'l+', 4)",
    "return F.match('hello', '.', -1)",
    "return F.match('hello', '.', 6)",
    "return F.match('hello', '', 6)",
    "return F.match('hello', '()', 6)",
    "return F.match('hello', '()', 7)",
    "return F.match('hello', '^l', 3)",
    "return F.match('hello', '^l', -2)",
    "return F.find('hello', '^h', 2)",
    "return F.find('abc', 'b', 2.0)",
    "return F.find('abc', 'b', '2')",
    /* argument errors */
    "return F.find('abc', 'b', 1.5)",
    "return F.find('abc', 'b', 'x')",
    "return F.find(nil, 'a')",
    "return F.find('a', {})",
    "return F.find('a')",
    "return F.match('a')",
    "return F.gmatch('a')",
    "return F.gmatch('a', 'a', 1.5)",
    "return F.gsub('a', 'a')",
    "return F.gsub('a', 'a', true)",
    "return F.gsub('a', 'a', nil)",
    "return F.gsub('a', 'a', 'b', 1.5)",
    "return F.gsub('a', 'a', 'b', 'x')",
    "return F.gsub({}, 'a', 'b')",
    /* captures and position captures */
    "return F.find('hello world', '(o)(r)')",
    "return F.find('hello', '()ll()')",
    "return F.match('hello', '()')",
    "return F.match('hello', '()', 3)",
    "return F.match('key = value', '(%w+)%s*=%s*(%w+)')",
    "return F.match('  trim me  ', '^%s*(.-)%s*$')",
    "return F.match('abc', '((a)(b))')",
    "return F.match('abc', '((a)(b)())')",
    "return F.match('2024-01-15', '(%d+)-(%d+)-(%d+)')",
    "return F.match('hello', '(h)(e)(l)(l)(o)')",
    "return F.match('x', '()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()')",
    "return F.match('x', '()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()')",
    "return F.match('', '()')",
    "return F.match('abc', '(a*(.))%2')",
    /* back-references */
    "return F.match('abcabc', '(abc)%1')",
    "return F.match('xyzxyz', '(.+)%1')",
    "return F.match('hello', '(l)%1')",
    "return F.match('hello', '(l)%1()')",
    "return F.match('ab ba', '(a)(b) %2%1')",
    "return F.match('aa', '()a%1')",
    "return F.match(string.rep('xy', 100), '^(.-)%1+$')",
    "return F.match('a', '%1')",
    "return F.match('a', '(a)%2')",
    "return F.match('a', '(a%1)')",
    "return F.match('a', '%0')",
    /* %b */
    "return F.match('f(a(b)c)d', '%b()')",
    "return F.find('((a)', '%b()')",
    "return F.find('(((', '%b()')",
    "return F.match('[[x]]', '%b[]')",
    "return F.match('abba', '%bab')",
    "return F.match('xx', '%bxx')",
    "return F.match('abc', '%b')",
    "return F.match('abc', '%ba')",
    "return F.gsub('a(b)c(d(e))f', '%b()', 'X')",
    "return F.match('if (a) then (b) end', '^if (%b()) then (%b()) end$')",
    /* %f */
    "return F.find('THE (quick) fox', '%f[%a]%a+')",
    "return F.gsub('THE (quick) fox', '%f[%a]%a+', 'W')",
    "return F.match('hello', '%f[%l]')",
    "return F.gsub('x y z', '%f[%w]', '|')",
    "return F.gsub('x y z', '%f[%W]', '|')",
    "return F.gsub('aaa bbb', '%f[%z]', '$')",
    "return F.gsub('hello world', '%f[^%z]', '^')",
    "return F.find('THE (quick) fox', '%f[%a]%a+%f[%A]', 5)",
    "return F.match('a', '%f')",
    "return F.match('a', '%fa')",
    "return F.match('a', '%f[a')",
    /* anchors */
    "return F.match('hello', '^h')",
    "return F.match('hello', '^e')",
    "return F.match('hello', 'o$')",
    "return F.match('hello', 'l$')",
    "return F.match('a$b', '$b')",
    "return F.match('a$b', 'a$b')",
    "return F.match('a$', 'a$')",
    "return F.match('a$', 'a%$')",
    "return F.match('^a', '%^a')",
    "return F.match('^a', '^^a')",
    "return F.match('', '^$')",
    "return F.match('x', '^$')",
    "return F.find('', '^')",
    "return F.find('abc', '$')",
    "return F.find('abc', '^', 4)",
    /* quantifiers and classes */
    "return F.match('aaab', 'a-b')",
    "return F.match('aaab', 'a*')",
    "return F.match('aaab', 'a+')",
    "return F.match('baaa', 'a+')",
    "return F.match('b', 'a?b')",
    "return F.match('ab', 'a?b')",
    "return F.match('', 'a*')",
    "return F.match('', 'a+')",
    "return F.match('xyz', '.-')",
    "return F.match('xyz', '.-$')",
    "return F.match('<a><b>', '<(.-)>')",
    "return F.match('<a><b>', '<(.*)>')",
    "return F.match('abc', '[a-b]+')",
    "return F.match('a-z', '[a%-z]+')",
    "return F.match('a-z', '[az-]+')",
    "return F.match('a-z', '[-az]+')",
    "return F.match(']', '[]]')",
    "return F.match('a]', '[]a]+')",
    "return F.match('^', '[%^]')",
    "return F.match('^x', '[x^]+')",
    "return F.match('abc', '[^a]+')",
    "return F.match('a]b', '[^]]+')",
    "return F.match('%]', '[%]]+')",
    "return F.match('a%b', '[a-%%]+')",
    "return F.match('hello123', '%a+')",
    "return F.match('hello123', '%d+')",
    "return F.match('Hello', '%u%l+')",
    "return F.match('a, b', '%p')",
    "return F.match('a \\t\\nb', '%s+')",
    "return F.match('foo_bar9', '[%w_]+')",
    "return F.match('0x1F', '0x(%x+)')",
    "return F.match('a\\1b', '%c')",
    "return F.match('  ab', '%g+')",
    "return F.match('abc123', '%A+')",
    "return F.match('abc123', '%D+')",
    "return F.match('a b', '%S+')",
    "return F.match('a\\0b', '%z')",
    "return F.match('a\\0b', '[%z]')",
    "return F.match('a\\0b', '%Z+')",
    "return F.match('a.b', '%.')",
    "return F.match('x', '%x')",
    "return F.match('q', '%q')",
    "return F.match('\\xff\\xfe', '[\\xf0-\\xff]+')",
    "return F.find('h\\xc3\\xa9llo', '\\xc3\\xa9')",
    "local all = {} for i = 0, 255 do all[#all + 1] = string.char(i) end all = table.concat(all)\n"
    "local out = {}\n"
    "for c in ('acdglpsuwxzACDGLPSUWXZ'):gmatch('.') do\n"
    "  out[#out + 1] = F.gsub(all, '%' .. c, '')\n"
    "  out[#out + 1] = F.gsub(all, '[%' .. c .. ']', '')\n"
    "  out[#out + 1] = F.gsub(all, '[^%' .. c .. 'x]', '')\n"
    "end\n"
    "out[#out + 1] = F.gsub(all, '[a-f%d]+', '')\n"
    "out[#out + 1] = F.gsub(all, '[\\x80-\\xff]', '')\n"
    "return out",
    /* malformed patterns */
    "return F.match('a', '%')",
    "return F.find('a', 'a%')",
    "return F.match('a', '[a')",
    "return F.match('a', '[a%')",
    "return F.match('a', '[^')",
    "return F.match('a', '[')",
    "return F.match('a', '[]')",
    "return F.match('a', '(a')",
    "return F.find('a', '(a')",
    "return F.match('a', 'a)')",
    "return F.match('a', ')')",
    "return F.find('a', '(()')",
    "return F.gsub('abc', '(', 'x')",
    "return F.gsub('abc', '%', 'x')",
    "return F.gmatch('abc', '[')()",
    "return F.match('a', string.rep('()', 33))",
    "return F.match('a', string.rep('(', 40))",
    "return F.match(string.rep('a', 300), string.rep('a?', 300))",
    "return F.match(string.rep('a', 190), string.rep('a?', 190))",
    "return F.find(string.rep('a', 300), string.rep('(a)?', 10))",
    /* gsub: string replacements */
    "return F.gsub('hello world', 'o', '0')",
    "return F.gsub('hello', '', '-')",
    "return F.gsub('', '', '-')",
    "return F.gsub('abc', '.', '%0%0')",
    "return F.gsub('abc', '(%w)', '%1-')",
    "return F.gsub('hello world', '(%w+)', '<%1>')",
    "return F.gsub('hello world', '(%w+) (%w+)', '%2 %1')",
    "return F.gsub('abc', 'b*', '-')",
    "return F.gsub('abc', 'x*', '-')",
    "return F.gsub('abc', '%w', '%%')",
    "return F.gsub('abc', '%w', '100%%')",
    "return F.gsub('abc', 'b', '%1')",
    "return F.gsub('abc', '(b)', '%2')",
    "return F.gsub('abc', '(b)', '%9')",
    "return F.gsub('abc', 'b', '%x')",
    "return F.gsub('abc', 'b', '%')",
    "return F.gsub('abc', 'b', 'a%')",
    "return F.gsub('abc', '()b', '%1')",
    "return F.gsub('abc', '()(b)()', '%3%2%1')",
    "return F.gsub('abc', 'b', 5)",
    "return F.gsub('abc', 'b', 5.5)",
    "return F.gsub('abc', 'b', 'x\\0y')",
    "return F.gsub('a\\0c', '%z', 'Z')",
    "return F.gsub(123, 2, 9)",
    "return F.gsub('abc', 'x', 'y')",
    "return F.gsub('hello world', '%w+', '%0 %0', 1)",
    /* gsub: the n limit */
    "return F.gsub('abc', '%w', 'x', 2)",
    "return F.gsub('abc', '%w', 'x', 0)",
    "return F.gsub('abc', '%w', 'x', -1)",
    "return F.gsub('abc', '%w', 'x', 3)",
    "return F.gsub('abc', '%w', 'x', 100)",
    "return F.gsub('abc', '%w', 'x', math.maxinteger)",
    "return F.gsub('abc', '%w', 'x', math.mininteger)",
    "return F.gsub('abc', '%w', 'x', '2')",
    "return F.gsub('abc', '%w', 'x', 2.0)",
    "return F.gsub('abc', '', 'x', 2)",
    /* gsub: anchors and empty matches */
    "return F.gsub('aaa', '^a', 'b')",
    "return F.gsub('aaa', '^a*', 'b')",
    "return F.gsub('', '^', 'x')",
    "return F.gsub('abc', '^', 'x')",
    "return F.gsub('abc', '$', '!')",
    "return F.gsub('abc', '^$', '!')",
    "return F.gsub('', '^$', '!')",
    "return F.gsub('abc', '^b', 'x')",
    "return F.gsub('hello world', '%s*', '_')",
    "return F.gsub('a,b,,c', ',?', ';')",
    "return F.gsub('abc', '.-', '-')",
    /* gsub: table replacements */
    "return F.gsub('$name is $age', '%$(%w+)', {name = 'bob', age = 42})",
    "return F.gsub('$name is $x', '%$(%w+)', {name = 'bob'})",
    "return F.gsub('$a $b', '%$(%w+)', {a = false, b = 'B'})",
    "return F.gsub('$a', '%$(%w+)', {a = {}})",
    "return F.gsub('$a', '%$(%w+)', {a = true})",
    "return F.gsub('abc', '%w', {a = 1, b = 2.5})",
    "return F.gsub('abc', '()b', {[2] = 'X'})",
    "return F.gsub('abc', 'b', setmetatable({}, {__index = function(_, k) return k:upper() end}))",
    "return F.gsub('abc', '(b)(c)', {b = 'B', c = 'C'})",
    /* gsub: function replacements */
    "return F.gsub('hello world', '%w+', string.upper)",
    "return F.gsub('hello world', '(%w+) (%w+)', function(a, b) return b .. ' ' .. a end)",
    "return F.gsub('abc', '%w', function() return nil end)",
    "return F.gsub('abc', '%w', function() return false end)",
    "return F.gsub('abc', '%w', function() end)",
    "return F.gsub('abc', '%w', function(c) return c:byte() end)",
    "return F.gsub('abc', '%w', function(c) return c:byte() + 0.5 end)",
    "return F.gsub('abc', '%w', function() return {} end)",
    "return F.gsub('abc', '%w', function() return true end)",
    "return F.gsub('abc', '%w', function() error('boom') end)",
    "return F.gsub('abc', '%w', function() error({}) end)",
    "return F.gsub('abc', '()b()', function(a, b) return a .. ':' .. b end)",
    "return F.gsub('abc', '', function(...) return select('#', ...) .. '' end)",
    "return F.gsub('abc', 'b', function(...) return select('#', ...) .. tostring(...) end)",
    "local n = 0\n"
    "local r = {F.gsub('a b c d', '%w', function(c) n = n + 1; return c .. n end, 3)}\n"
    "return n, r",
    "return F.gsub('a.b', '%.', function(c) return F.gsub(c, '.', '%%') end)",
    /* gmatch */
    "return collect(F.gmatch('one two three', '%a+'))",
    "return collect(F.gmatch('a=1, b=2, c=3', '(%w+)=(%w+)'))",
    "return collect(F.gmatch('banana', '()an'))",
    "return collect(F.gmatch('abc', ''))",
    "return collect(F.gmatch('abc', 'x*'))",
    "return collect(F.gmatch('abc', '.-'))",
    "return collect(F.gmatch('a,b,,c', '([^,]*)'))",
    "return collect(F.gmatch('', ''))",
    "return collect(F.gmatch('', 'a'))",
    "return collect(F.gmatch('one two three', '%a+', 2))",
    "return collect(F.gmatch('one two three', '%a+', 5))",
    "return collect(F.gmatch('one two three', '%a+', -5))",
    "return collect(F.gmatch('one two three', '%a+', -100))",
    "return collect(F.gmatch('one two three', '%a+', 0))",
    "return collect(F.gmatch('one two three', '%a+', 100))",
    "return collect(F.gmatch('abc', '', 4))",
    "return collect(F.gmatch('abc', '', 5))",
    "return collect(F.gmatch('abc', '()', math.maxinteger))",
    "return collect(F.gmatch('abc', '()', math.mininteger))",
    "return collect(F.gmatch('^a^a', '^a'))",
    "return collect(F.gmatch('aaa', '^a'))",
    "return collect(F.gmatch('abc', '$'))",
    "return collect(F.gmatch('abc', '.$'))",
    "return collect(F.gmatch('a$b$', '.$'))",
    "return collect(F.gmatch('f(a(b)) g(c)', '%b()'))",
    "return collect(F.gmatch('THE (quick) fox', '%f[%a]%a+'))",
    "return collect(F.gmatch('aaa', 'a-'))",
    "return collect(F.gmatch('abab', '(a)(b)()'))",
    "return collect(F.gmatch('abc', '%'))",
    "return collect(F.gmatch('abc', '(()'))",
    "local it = F.gmatch('abcabc', 'b')\n"
    "local a = it(); local b = it(); local c = it(); local d = it()\n"
    "return a, b, c, d",
    "local t = {}\n"
    "for k, v in F.gmatch('k1=v1;k2=v2', '(%w+)=(%w+)') do t[k] = v end\n"
    "return t",
    "local t = {}\n"
    "for w in F.gmatch(string.rep('word ', 200), '%a+') do t[#t + 1] = w end\n"
    "return #t, t[1], t[200]",
    /* longer subjects */
    "local s = string.rep('abcdefghij', 1000) .. 'xyz'\n"
    "return F.find(s, 'xyz'), F.find(s, 'j(x)y'), F.match(s, '(%l+)z$'):len(), F.find(s, 'q')",
    "local s = string.rep('a', 3000)\n"
    "return F.find(s, 'a*b'), F.match(s, '^(a-)a$'):len(), (F.gsub(s, 'aa', 'b')):len()",
};

/* Run a chunk in L; on success leave its results, on error leave the message. */
static int run(lua_State *L, const char *src, int nres)
{
    if (luaL_loadstring(L, src) != LUA_OK)
        return 0;
    return lua_pcall(L, 0, nres, 0) == LUA_OK;
}

static void test_equivalence(lua_State *L)
{
    size_t i;
    int ok_cases = 0;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int same;
        lua_getglobal(L, "run_case");
        lua_pushstring(L, cases[i]);
        if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
            CHECK(0, "case %zu harness error: %s", i, lua_tostring(L, -1));
            lua_pop(L, 1);
            continue;
        }
        same = lua_toboolean(L, -2);
        CHECK(same, "case %zu differs: %s\n    %s", i, cases[i], lua_tostring(L, -1));
        ok_cases += same;
        lua_pop(L, 2);
    }
    printf("equivalence: %d/%zu cases identical to stock\n", ok_cases,
           sizeof cases / sizeof cases[0]);

    /* random differential fuzzing */
    {
        lua_Integer cmp, bad;
        double t0 = now();
        lua_getglobal(L, "fuzz");
        lua_pushinteger(L, 20000);
        lua_pushinteger(L, 20240601);
        if (lua_pcall(L, 2, 3, 0) != LUA_OK) {
            CHECK(0, "fuzz harness error: %s", lua_tostring(L, -1));
            lua_pop(L, 1);
            return;
        }
        cmp = lua_tointeger(L, -3);
        bad = lua_tointeger(L, -2);
        CHECK(cmp == 100000 && bad == 0, "fuzz: %lld/%lld comparisons differ; first: %s",
              (long long)bad, (long long)cmp, lua_tostring(L, -1));
        printf("fuzz: %lld random comparisons, %lld differences (%.2fs)\n", (long long)cmp,
               (long long)bad, now() - t0);
        lua_pop(L, 3);
    }
}

/* Run `src` (which must raise an error) and check the message. The step
 * budget is deterministic, so the error itself proves the matcher stopped;
 * no wall-clock limit (tests never assert times: see make bench). */
static void expect_budget_error(lua_State *L, const char *what, const char *src, const char *msg)
{
    if (run(L, src, 0)) {
        CHECK(0, "%s: expected an error, got success", what);
        return;
    }
    const char *err = lua_tostring(L, -1);
    CHECK(err && strstr(err, msg), "%s: wrong error: %s", what, err ? err : "(non-string)");
    lua_pop(L, 1);
}

static void test_pathological(lua_State *L)
{
    const char *budget_msg =
        "pattern too complex: more than 10000000 matching steps (rule CPU budget)";
    int fits = run(L, "return string.find(string.rep('a', 4000), 'a*b')", 1);
    CHECK(fits && lua_isnil(L, -1), "an 8M-step call fits the budget: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    /* the instruction-count hook cannot see any of these: they run entirely in C */
    expect_budget_error(L, "find a*...b (method call)",
                        "local s = string.rep('a', 30000)\n"
                        "return s:find(string.rep('a*', 12) .. 'b')",
                        budget_msg);
    expect_budget_error(L, "string.match a*...b",
                        "return string.match(string.rep('a', 30000), string.rep('a*', 12) .. 'b')",
                        budget_msg);
    expect_budget_error(L, "gmatch a*...b",
                        "for _ in string.gmatch(string.rep('a', 30000), "
                        "string.rep('a*', 12) .. 'b') do end",
                        budget_msg);
    expect_budget_error(L, "gsub a*...b",
                        "return string.gsub(string.rep('a', 30000), "
                        "string.rep('a*', 12) .. 'b', '')",
                        budget_msg);
    expect_budget_error(L, "anchored .-.-.-...$",
                        "return string.find(string.rep('a', 30000), "
                        "'^' .. string.rep('.-', 12) .. '$b')",
                        budget_msg);
    expect_budget_error(L, "quadratic %b()", "return string.find(string.rep('(', 1000000), '%b()')",
                        budget_msg);
    expect_budget_error(L, "long [class] per attempt",
                        "return string.find(string.rep('a', 1000000), "
                        "'[' .. string.rep('b', 100000) .. ']')",
                        budget_msg);
    expect_budget_error(L, "plain find blowup",
                        "return string.find(string.rep('a', 1000000), "
                        "string.rep('a', 500000) .. 'b', 1, true)",
                        budget_msg);
    expect_budget_error(L, "plain find (no specials)",
                        "return string.find(string.rep('a', 1000000), "
                        "string.rep('a', 500000) .. 'b')",
                        budget_msg);
    expect_budget_error(L, "back-reference (.*)%1b",
                        "return string.find(string.rep('a', 100000), '(.*)%1b')", budget_msg);
    expect_budget_error(L, "escape-heavy replacement",
                        "return string.gsub(string.rep('a', 100000), '', "
                        "string.rep('%0', 100000))",
                        budget_msg);

    /* stock errors are kept: MAXCCALLS recursion limit */
    {
        int deep = run(L, "return string.match(string.rep('a', 300), string.rep('a?', 300))", 1);
        CHECK(!deep && ends_with(lua_tostring(L, -1), ": pattern too complex"),
              "recursion limit: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }

    /* A gmatch iterator retried after an error must still have its recursion limit (stock
     * 5.4.4 loses it and would recurse 200000 levels deep here, overflowing the C stack). */
    {
        const char *src = "local s = string.rep('a', 200000)\n"
                          "local it = string.gmatch(s, string.rep('a?', 200000))\n"
                          "local r = {}\n"
                          "for i = 1, 3 do r[i] = select(2, pcall(it)) end\n"
                          "return table.concat(r, '|')";
        int ok = run(L, src, 1);
        CHECK(ok && strcmp(lua_tostring(L, -1),
                           "pattern too complex|pattern too complex|pattern too complex") == 0,
              "gmatch retry keeps depth limit: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }

    /* after a budget error the state is fully usable */
    {
        int ok = run(L, "return string.find('hello world', 'o (w)')", 3);
        CHECK(ok && lua_tointeger(L, -3) == 5 && lua_tointeger(L, -2) == 7 &&
                  strcmp(lua_tostring(L, -1), "w") == 0,
              "state usable after budget errors");
        lua_pop(L, ok ? 3 : 1);
    }

    /* the budgeted functions are the ones reachable through the string metatable, and they
     * carry their budget as upvalue 1 */
    {
        int ok = run(L,
                     "local n, v = debug.getupvalue(string.gsub, 1)\n"
                     "return ('x').find == string.find and ('x').gsub == string.gsub\n"
                     "  and string.find ~= S.find and string.match ~= S.match\n"
                     "  and string.gmatch ~= S.gmatch and string.gsub ~= S.gsub\n"
                     "  and v == 10000000 and math.type(v) == 'integer'",
                     1);
        CHECK(ok && lua_toboolean(L, -1), "install replaced the string table functions");
        lua_pop(L, 1);
    }
}

/* Budget semantics, checked with small budgets installed into scratch tables. */
static void test_budget_scope(lua_State *L)
{
    const char *src = "local s = string.rep('a', 400)\n"
                      "local p = string.rep('a*', 2) .. 'b'\n"
                      "return T.find(s, p)";
    lua_newtable(L);
    strmatch_install(L, -1, 1000, NULL);
    lua_setglobal(L, "T");

    /* the step count starts afresh for each call */
    {
        int ok = run(L,
                     "local r = {}\n"
                     "for i = 1, 50 do r[i] = T.find(string.rep('a', 20) .. 'b', 'a*b') end\n"
                     "return #r",
                     1);
        CHECK(ok && lua_tointeger(L, -1) == 50, "per-call budget: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    /* one unanchored find over all start positions shares one budget */
    {
        int ok = run(L, src, 1);
        CHECK(!ok && strstr(lua_tostring(L, -1), "more than 1000 matching steps"),
              "unanchored find shares one budget: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    /* all the matches of one gsub share one budget */
    {
        int ok = run(L, "return T.gsub(string.rep('ab ', 400), '%a+', 'x')", 1);
        CHECK(!ok && strstr(lua_tostring(L, -1), "more than 1000 matching steps"),
              "gsub shares one budget: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    /* a gmatch iterator gets a fresh budget on each call */
    {
        int ok = run(L,
                     "local n = 0\n"
                     "for _ in T.gmatch(string.rep('ab ', 400), '%a+') do n = n + 1 end\n"
                     "return n",
                     1);
        CHECK(ok && lua_tointeger(L, -1) == 400, "gmatch budget is per iterator call: %s",
              lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    /* the budget belongs to the closure: the real string table still has 10,000,000 */
    {
        int ok = run(L, "return string.find(string.rep('a', 200), 'a*a*b')", 1);
        CHECK(ok && lua_isnil(L, -1), "independent budgets per install");
        lua_pop(L, 1);
    }
    /* a zero (or negative, clamped to zero) budget refuses any matcher work */
    lua_newtable(L);
    strmatch_install(L, -1, -5, NULL);
    lua_setglobal(L, "Z");
    {
        int ok = run(L, "return Z.match('a', 'a')", 1);
        CHECK(!ok && ends_with(lua_tostring(L, -1), ": pattern too complex: more than 0 "
                                                    "matching steps (rule CPU budget)"),
              "zero budget: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
}

/* Smallest budget (to within 1%) with which `call` (a chunk using T) succeeds. */
static lua_Integer steps_needed(lua_State *L, const char *call)
{
    lua_Integer lo = 0, hi = BUDGET; /* call fails with lo - 1 ... succeeds with hi */
    while (hi - lo > hi / 100) {
        lua_Integer mid = lo + (hi - lo) / 2;
        int ok;
        lua_newtable(L);
        strmatch_install(L, -1, mid, NULL);
        lua_setglobal(L, "T");
        ok = run(L, call, 0);
        if (!ok)
            lua_pop(L, 1);
        if (ok)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static void test_legit_heavy(lua_State *L)
{
    static const struct {
        const char *name;
        const char *call;
    } work[] = {
        {"gsub('%s+', ' ')", "return F.gsub(BIG, '%s+', ' ')"},
        {"gsub('(%w+)', '<%1>')", "return F.gsub(BIG, '(%w+)', '<%1>')"},
        {"gsub('[aeiou]', '')", "return F.gsub(BIG, '[aeiou]', '')"},
        {"gsub('%a+', string.upper)", "return F.gsub(BIG, '%a+', string.upper)"},
        {"gsub('(%d+)', {...})", "return F.gsub(BIG, '(%d+)', {['12345'] = 'N'})"},
        {"gmatch('[^\\n]+') count",
         "local n = 0 for l in F.gmatch(BIG, '[^\\n]+') do n = n + #l end return n"},
        {"match('^(.-)%s*$')", "return #F.match(BIG, '^(.-)%s*$')"},
        {"find('zzz%d') (absent)", "return F.find(BIG, 'zzz%d')"},
        {"find plain (absent)", "return F.find(BIG, 'lazy cat', 1, true)"},
        {"match('^.*$')", "return #F.match(BIG, '^.*$')"},
    };
    size_t i;
    int ok = run(L,
                 "local line = 'The quick brown fox jumps over the lazy dog 12345, again!\\n'\n"
                 "BIG = string.rep(line, (1 << 20) // #line + 1):sub(1, 1 << 20)\n"
                 "return #BIG",
                 1);
    CHECK(ok && lua_tointeger(L, -1) == 1 << 20, "1 MB subject built");
    lua_pop(L, 1);

    for (i = 0; i < sizeof work / sizeof work[0]; i++) {
        char src[512];
        double t0, dt;
        lua_getglobal(L, "run_case"); /* same results as stock, under the 10M budget */
        lua_pushstring(L, work[i].call);
        t0 = now();
        if (lua_pcall(L, 1, 3, 0) != LUA_OK) {
            CHECK(0, "heavy %s: harness error %s", work[i].name, lua_tostring(L, -1));
            lua_pop(L, 1);
            continue;
        }
        dt = now() - t0;
        CHECK(lua_toboolean(L, -3) && lua_toboolean(L, -1), "heavy %s failed or differs: %.300s",
              work[i].name, lua_tostring(L, -2));
        lua_pop(L, 3);
        snprintf(src, sizeof src, "local F = T\n%s", work[i].call);
        printf("legit 1 MB: %-28s ok (stock+budgeted %.3fs), needs ~%lld steps\n", work[i].name, dt,
               (long long)steps_needed(L, src));
    }
}

int main(void)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        printf("cannot create Lua state\n0 passed, 1 failed\n");
        return 1;
    }
    luaL_openlibs(L);
    if (!run(L, harness, 0)) {
        printf("harness error: %s\n0 passed, 1 failed\n", lua_tostring(L, -1));
        return 1;
    }

    /* install into the real string library table */
    lua_getglobal(L, "string");
    strmatch_install(L, -1, BUDGET, NULL);
    lua_pop(L, 1);
    CHECK(lua_gettop(L) == 0, "strmatch_install left the stack balanced");
    if (!run(L,
             "B = {find = string.find, match = string.match, gmatch = string.gmatch,\n"
             "     gsub = string.gsub}",
             0))
        CHECK(0, "setting B: %s", lua_tostring(L, -1));

    test_equivalence(L);
    test_pathological(L);
    test_budget_scope(L);
    test_legit_heavy(L);
    CHECK(lua_gettop(L) == 0, "test left the stack balanced (%d)", lua_gettop(L));

    lua_close(L);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
