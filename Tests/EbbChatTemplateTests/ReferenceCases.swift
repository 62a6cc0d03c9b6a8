// Reference renderings produced by Python Jinja2 3.1.6 configured as transformers does
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, raise_exception,
// json.dumps-based tojson). Each case holds `expected` output, `raises` (the message given to
// raise_exception) or `error` (the Python exception type; Ebb must throw too).
// Regenerate with a script like the one described in ChatTemplateTests.swift if the cases change.

enum ReferenceCases {
    static let snippetContext = #"""
{
 "d": {
  "a": 1,
  "b": [
   1,
   2,
   {
    "c": "x"
   }
  ],
  "items": 5
 },
 "n": null,
 "l": [
  3,
  1,
  2
 ],
 "s": "Hello World",
 "f": 1.5,
 "i": 7,
 "e": [],
 "t": true,
 "msgs": [
  {
   "role": "user",
   "content": "hi"
  },
  {
   "role": "assistant",
   "content": "yo",
   "x": 1
  }
 ],
 "uni": "Z\u00fcrich\n\ud83d\ude00 \u00df",
 "big": 12345678901234,
 "neg": -3
}
"""#

    static let snippets = #"""
[
 {
  "expected": "3|3|-4|-2|1024|0.5|0.3333333333333333|2.5",
  "template": "{{ 1 + 2 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % -3 }}|{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ 1 / 3 }}|{{ 10 / 4 }}"
 },
 {
  "expected": "0.30000000000000004|1e+100|1e-07|1.2345678901234568e+17|1e+16|9999999999999998.0|0.5|100.0|3.0|-1.5",
  "template": "{{ 0.1 + 0.2 }}|{{ 1e100 }}|{{ 1.0e-7 }}|{{ 123456789012345678.0 }}|{{ 1e16 }}|{{ 9999999999999998.0 }}|{{ 0.5 }}|{{ 100.0 }}|{{ f * 2 }}|{{ -f }}"
 },
 {
  "expected": "1.0|0.5|0.0|1.0|6.25",
  "template": "{{ 3.0 // 2 }}|{{ -3.5 % 2 }}|{{ 5 % 2.5 }}|{{ i / 7 }}|{{ 2.5 ** 2 }}"
 },
 {
  "expected": "a1None2.0True",
  "template": "{{ \"a\" ~ 1 ~ none ~ u ~ 2.0 ~ true }}"
 },
 {
  "expected": "[1, 'a', None, True, 1.0, [2], {'k': 'v'}, (1,), ()]",
  "template": "{{ [1, 'a', none, true, 1.0, [2], {'k': 'v'}, (1,), ()] }}"
 },
 {
  "expected": "{'a': 1, 'b': [1, 2, {'c': 'x'}], 'items': 5}|None|True||[]",
  "template": "{{ d }}|{{ n }}|{{ t }}|{{ u }}|{{ e }}"
 },
 {
  "expected": "HELLO WORLD|hello world|11|10|Z\u00dcRICH\n\ud83d\ude00 SS|Hello World|Mixed case",
  "template": "{{ s|upper }}|{{ s|lower }}|{{ s|length }}|{{ uni|length }}|{{ uni|upper }}|{{ s|title }}|{{ \"mIxEd cASE\"|capitalize }}"
 },
 {
  "expected": "TrueTrue['Hello', 'World']['Hell', ' W', 'rld']['Hell', ' World']['Hello W', 'rld']",
  "template": "{{ s.startswith('Hell') }}{{ s.endswith(('x', 'ld')) }}{{ s.split() }}{{ s.split('o') }}{{ s.split('o', 1) }}{{ s.rsplit('o', 1) }}"
 },
 {
  "expected": "pad|pad|pad  |  pad|x",
  "template": "{{ \"  pad  \".strip() }}|{{ \"xxpadxx\".strip('x') }}|{{ \"  pad  \".lstrip() }}|{{ \"  pad  \".rstrip() }}|{{ \"\\n\\nx\\n\".strip('\\n') }}"
 },
 {
  "expected": "HeLLo WorLd|HeLLo World|4|7|-1|3",
  "template": "{{ s.replace('l', 'L') }}|{{ s.replace('l', 'L', 2) }}|{{ s.find('o') }}|{{ s.rfind('o') }}|{{ s.find('z') }}|{{ s.count('l') }}"
 },
 {
  "expected": "H|d|ell|dlroW olleH|HloWrd|[2, 1, 3]|[1, 2]|[3, 1]|[1, 2]|[]|\u00df \ud83d\ude00\nhcir\u00fcZ|[2, 3]|[2, 1]",
  "template": "{{ s[0] }}|{{ s[-1] }}|{{ s[1:4] }}|{{ s[::-1] }}|{{ s[::2] }}|{{ l[::-1] }}|{{ l[1:] }}|{{ l[:-1] }}|{{ l[-2:] }}|{{ l[5:] }}|{{ uni[::-1] }}|{{ l[::-2] }}|{{ l[10:0:-1] }}"
 },
 {
  "expected": "[1, 2, 3]|[3, 2, 1]|3|1|6|3|2|3|3-1-2|[2, 1, 3]",
  "template": "{{ l|sort }}|{{ l|sort(reverse=true) }}|{{ l|max }}|{{ l|min }}|{{ l|sum }}|{{ l|first }}|{{ l|last }}|{{ l|length }}|{{ l|join('-') }}|{{ l|reverse|list }}"
 },
 {
  "expected": "{\"a\": 1, \"b\": [1, 2, {\"c\": \"x\"}], \"items\": 5}|{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2,\n    {\n      \"c\": \"x\"\n    }\n  ],\n  \"items\": 5\n}|\"Z\u00fcrich\\n\ud83d\ude00 \u00df\"|[1.0, 2.5e-10, null, \"q\\\"\\\\\\t\\u0001\"]|[\n    {\n        \"role\": \"user\",\n        \"content\": \"hi\"\n    },\n    {\n        \"role\": \"assistant\",\n        \"content\": \"yo\",\n        \"x\": 1\n    }\n]",
  "template": "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ uni|tojson }}|{{ [1.0, 2.5e-10, none, \"q\\\"\\\\\\t\\x01\"]|tojson }}|{{ msgs|tojson(indent=4) }}"
 },
 {
  "expected": "[('a', 1), ('b', [1, 2, {'c': 'x'}]), ('items', 5)]|['a', 'b', 'items']|[1, [1, 2, {'c': 'x'}], 5]|1|None|5|x|x",
  "template": "{{ d|items|list }}|{{ d.keys()|list }}|{{ d.values()|list }}|{{ d.get('a') }}|{{ d.get('zz') }}|{{ d.get('zz', 5) }}|{{ d['b'][2]['c'] }}|{{ d.b.2.c }}"
 },
 {
  "expected": "[{'role': 'user', 'content': 'hi'}]|['user']|D,1",
  "template": "{{ msgs|selectattr('role', 'equalto', 'user')|list }}|{{ msgs|rejectattr('x')|map(attribute='role')|list }}|{{ msgs|map(attribute='x', default='D')|join(',') }}"
 },
 {
  "expected": "[1, 3]|[1, 3]|['A', 'B']|['A', 'b']",
  "template": "{{ [1, 2, 3, 4]|select('odd')|list }}|{{ [1, 2, 3, 4]|reject('even')|list }}|{{ ['a', 'b']|map('upper')|list }}|{{ [\"A\", \"a\", \"b\"]|unique|list }}"
 },
 {
  "expected": "dflt|None|dflt|x",
  "template": "{{ u|default('dflt') }}|{{ n|default('dflt') }}|{{ ''|default('dflt', true) }}|{{ u|d('x') }}"
 },
 {
  "expected": "42|4|0|9|4|3.25|3.0|0.0|12x",
  "template": "{{ '42'|int }}|{{ '4.7'|int }}|{{ 'x'|int }}|{{ 'x'|int(9) }}|{{ 4.9|int }}|{{ '3.25'|float }}|{{ 3|float }}|{{ 'abc'|float }}|{{ 12|string ~ 'x' }}"
 },
 {
  "expected": "x|  a\n  b\n\n  c|a\n    b\n|> a\n> b|a\n  \n  b",
  "template": "{{ 'x'|indent(2) }}|{{ \"a\\nb\\n\\nc\"|indent(2, true) }}|{{ \"a\\nb\\n\"|indent(4) }}|{{ \"a\\nb\"|indent(\"> \", first=true) }}|{{ \"a\\n\\nb\"|indent(2, blank=true) }}"
 },
 {
  "expected": "tests ok",
  "template": "{% if i is number and s is string and d is mapping and l is iterable and l is sequence and n is none and u is undefined and i is defined %}tests ok{% endif %}"
 },
 {
  "expected": "tests2 ok",
  "template": "{% if t is true and not (t is false) and t is boolean and 1 is integer and 1.0 is float and 3 is odd and 4 is even and 9 is divisibleby 3 %}tests2 ok{% endif %}"
 },
 {
  "expected": "in ok",
  "template": "{% if 'a' in 'cat' and 2 in l and 'a' in d and 'z' not in d and not 'q' in s %}in ok{% endif %}"
 },
 {
  "expected": "TrueFalseTrueTrueTrueTrueTrueTrueTrueTrueTrue",
  "template": "{{ 1 < 2 < 3 }}{{ 1 < 3 < 2 }}{{ 'a' < 'b' }}{{ [1, 2] < [1, 3] }}{{ 1 == 1.0 }}{{ true == 1 }}{{ 'a' != 'b' }}{{ none == none }}{{ u == u }}{{ [1] == [1] }}{{ d == d }}"
 },
 {
  "expected": "yes|no||x|fallback||[]",
  "template": "{{ 'yes' if t else 'no' }}|{{ 'yes' if n else 'no' }}|{{ 'only' if n }}|{{ t and 'x' }}|{{ n or 'fallback' }}|{{ 0 or '' }}|{{ e and 1 }}"
 },
 {
  "expected": "1/0/3/2/True/False/3//1;2/1/2/1/False/False/3/3/2;3/2/1/0/False/True/3/1/;",
  "template": "{% for x in l %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}/{{ loop.previtem }}/{{ loop.nextitem }};{% endfor %}"
 },
 {
  "expected": "3:1:2,2:2:2,|empty",
  "template": "{% for x in l if x > 1 %}{{ x }}:{{ loop.index }}:{{ loop.length }},{% else %}none{% endfor %}|{% for x in e %}x{% else %}empty{% endfor %}"
 },
 {
  "expected": "a=1;b=[1, 2, {'c': 'x'}];items=5;|a,b,items,|37|a.b.c.",
  "template": "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in d %}{{ k }},{% endfor %}|{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %}|{% for c in 'abc' %}{{ c }}.{% endfor %}"
 },
 {
  "expected": "3",
  "template": "{% for x in l %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}"
 },
 {
  "expected": "11a21b112a22b2",
  "template": "{% for x in [1, 2] %}{% for y in ['a', 'b'] %}{{ loop.index }}{{ x }}{{ y }}{% endfor %}{{ loop.index }}{% endfor %}"
 },
 {
  "expected": "oddevenodd",
  "template": "{% for x in l %}{{ loop.cycle('odd', 'even') }}{% endfor %}"
 },
 {
  "expected": "6[3, 1, 2]",
  "template": "{% set ns = namespace(count=0, items=[]) %}{% for x in l %}{% set ns.count = ns.count + x %}{% set ns.items = ns.items + [x] %}{% endfor %}{{ ns.count }}{{ ns.items }}"
 },
 {
  "expected": "4231",
  "template": "{% set x = 1 %}{% for i in l %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}"
 },
 {
  "expected": "12(3, 4)[1, 2, 3]",
  "template": "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = (3, 4) %}{{ c }}{% set q = [1, 2] + [3] %}{{ q }}"
 },
 {
  "expected": "[inner Hello World]SHOUT",
  "template": "{% set block %}inner {{ s }}{% endset %}[{{ block }}]{% set up | upper %}shout{% endset %}{{ up }}"
 },
 {
  "expected": "Hello, Bob!|Hi, Ann!|Hello, Z!",
  "template": "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Bob') }}|{{ greet('Ann', greeting='Hi') }}|{{ greet(name='Z') }}"
 },
 {
  "expected": "1(2, 3){'k': 4}",
  "template": "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k=4) }}"
 },
 {
  "expected": "FILTERED HELLO WORLD|5",
  "template": "{% filter upper %}filtered {{ s }}{% endfilter %}|{% with w = 5 %}{{ w }}{% endwith %}{{ w }}"
 },
 {
  "expected": "{{ not rendered }} {% if %}",
  "template": "{% raw %}{{ not rendered }} {% if %}{% endraw %}"
 },
 {
  "expected": "[0, 1, 2][1, 4, 7][5, 3, 1]{'a': 1, 'b': 2}",
  "template": "{{ range(3)|list }}{{ range(1, 10, 3)|list }}{{ range(5, 0, -2)|list }}{{ dict(a=1, b=2) }}"
 },
 {
  "expected": "x and 1|ba|N!|x is 3|5",
  "template": "{{ \"{} and {}\".format('x', 1) }}|{{ \"{1}{0}\".format('a', 'b') }}|{{ \"{name}!\".format(name='N') }}|{{ \"%s is %d\" % ('x', 3) }}|{{ \"%s\"|format(5) }}"
 },
 {
  "expected": "['a', 'b', '', 'c']|['a', 'b', '', 'c']|['a', 'b ']|['a.b', 'c']|['l1', 'l2', 'l3']",
  "template": "{{ \"a,b,,c\".split(',') }}|{{ \"a b  c\".split(' ') }}|{{ \"  a  b \".split(None, 1) }}|{{ \"a.b.c\".rsplit('.', 1) }}|{{ \"l1\\nl2\\r\\nl3\".splitlines() }}"
 },
 {
  "expected": "abcabc|[1, 1, 1]|xxx|\u00e9Z\u00fcr|12345678901234000|3|4.0|3.14|2.0|4.0",
  "template": "{{ 'abc' * 2 }}|{{ [1] * 3 }}|{{ 3 * 'x' }}|{{ '\u00e9' ~ uni[0:3] }}|{{ big * 1000 }}|{{ neg|abs }}|{{ 3.7|round }}|{{ 3.14159|round(2) }}|{{ 2.5|round }}|{{ 3.5|round }}"
 },
 {
  "expected": "[[3, 1], [2]]|[('a', 1), ('b', [1, 2, {'c': 'x'}]), ('items', 5)]|   x   |&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;|3|Hello World|True",
  "template": "{{ l|batch(2)|list }}|{{ d|dictsort }}|{{ 'x'|center(7) }}|{{ \"<a href='x'>&</a>\"|e }}|{{ 'two words here'|wordcount }}|{{ s|safe }}|{{ 'Hi'|attr('upper') is defined }}"
 },
 {
  "expected": "user|yo|||||1|2",
  "template": "{{ msgs[0].role }}|{{ msgs[-1]['content'] }}|{{ msgs[5] }}|{{ d.zzz }}|{{ n.x }}|{{ d['zzz'] }}|{{ l.count(1) }}|{{ l.index(2) }}"
 },
 {
  "expected": "Abc|Hello World|They're Bill's|SS|000x|-00x|a**|  a|--ab-",
  "template": "{{ 'abc'.upper().lower().title() }}|{{ 'hello world'.title() }}|{{ \"they're bill's\"|title }}|{{ '\u00df'.upper() }}|{{ 'x'.zfill(4) }}|{{ '-x'.zfill(4) }}|{{ 'a'.ljust(3, '*') }}|{{ 'a'.rjust(3) }}|{{ 'ab'.center(5, '-') }}"
 },
 {
  "expected": "('a', '-', 'b-c')|('a-b', '-', 'c')|bc|ab|True|True|True|True|True",
  "template": "{{ 'a-b-c'.partition('-') }}|{{ 'a-b-c'.rpartition('-') }}|{{ 'abc'.removeprefix('a') }}|{{ 'abc'.removesuffix('c') }}|{{ '123'.isdigit() }}|{{ 'ab'.isalpha() }}|{{ ' '.isspace() }}|{{ 'AB'.isupper() }}|{{ 'ab'.islower() }}"
 },
 {
  "error": "TypeError",
  "template": "{{ -1 }}|{{ - i }}|{{ +i }}|{{ not t }}|{{ not not n }}|{{ -2 ** 2 }}|{{ (1 + 2) * 3 }}|{{ 1 + 2 * 3 }}|{{ 2 ** 3 ** 2 }}|{{ 10 - 2 - 3 }}|{{ 1 ~ 2 + 3 }}"
 },
 {
  "error": "TemplateSyntaxError",
  "template": "{{ 0x1F }}{{ 0o17 }}{{ 0b101 }}{{ 1_000 }}{{ 1_0.5 }}{{ 1e3 }}{{ 2E-3 }}{{ 007 if false else 0 }}{{ 'adj' 'acent' }}{{ \"esc\\x41\\u00e9\\t|\" }}{{ 'q\\'s' }}"
 },
 {
  "expected": "[1, 2]|((1, 2),)|{'a': {'b': [1, {'c': None}]}}|{'a': \"it's\"}|[\"it's\", 'say \"hi\"', 'both \\' \"', '\\\\', '\\n\\t\\x00\\x7f\\u200b']",
  "template": "{{ (1, 2)|list }}|{{ ((1, 2),) }}|{{ {'a': {'b': [1, {'c': none}]}} }}|{{ {'a': \"it's\"} }}|{{ [\"it's\", 'say \"hi\"', 'both \\' \"', \"\\\\\", \"\\n\\t\\x00\\x7f\\u200b\"] }}"
 },
 {
  "expected": "true|null|1e+20|\"x\"|{}|[\n  []\n]|{\"a\": 2, \"b\": 1}|[1,2]",
  "template": "{{ t|tojson }}|{{ n|tojson }}|{{ 1e20|tojson }}|{{ 'x'|tojson(indent=2) }}|{{ {}|tojson(indent=2) }}|{{ [[]]|tojson(indent=2) }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}|{{ [1,2]|tojson(separators=(',', ':')) }}"
 },
 {
  "expected": "312|user, assistant|user,assistant|312|3.5|[1, 2]",
  "template": "{{ l|join }}|{{ msgs|map(attribute='role')|join(', ') }}|{{ msgs|join(',', attribute='role') }}|{{ l|map('string')|join }}|{{ [1.5, 2]|sum }}|{{ [[1], [2]]|sum(start=[]) }}"
 },
 {
  "expected": "3|0|['a', 'b']|['a', 'b', 'items']|[]|||3|x|z",
  "template": "{{ d|length }}|{{ u|length }}|{{ 'ab'|list }}|{{ d|list }}|{{ u|list }}|{{ e|first }}|{{ u|first }}|{{ [3, 'b']|first }}|{{ 'xyz'|first }}|{{ 'xyz'|last }}"
 },
 {
  "expected": "[3, 1, 2]|[{'a': 1}, {'a': 2}]|1|['A', 'b', 'c']|['A', 'b', 'c']|['assistant', 'user']",
  "template": "{{ l|unique|list }}|{{ [{'a': 1}, {'a': 1}, {'a': 2}]|unique(attribute='a')|list }}|{{ l|sort|first }}|{{ ['b', 'A', 'c']|sort }}|{{ ['b', 'A', 'c']|sort(case_sensitive=true) }}|{{ msgs|sort(attribute='role')|map(attribute='role')|list }}"
 },
 {
  "expected": "TrueTrueFalseFalseTrueTrueFalseTrueTrueTrueTrueTrueTrueTrueFalse",
  "template": "{{ 'a' is lower }}{{ 'A' is upper }}{{ 'aB' is lower }}{{ '1' is lower }}{{ none is sameas none }}{{ t is sameas true }}{{ l is callable }}{{ range is callable }}{{ 2 is in l }}{{ 1 is eq 1 }}{{ 1 is ne 2 }}{{ 2 is gt 1 }}{{ 2 is ge 2 }}{{ 1 is lt 2 }}{{ 1 is le 0 }}"
 },
 {
  "error": "TemplateSyntaxError",
  "template": "{{ d.items is defined }}{{ d.zz is defined }}{{ d.b is defined }}{{ u.x is defined if u is defined else 'ud' }}{{ l.append is defined }}"
 },
 {
  "expected": "a    b\nc",
  "template": "a  {% if true %}\n  b\n  {% endif %}\nc"
 },
 {
  "expected": "a\n    b\n  c",
  "template": "a\n  {% if true %}\n    b\n  {% endif %}\n  c\n"
 },
 {
  "expected": "x",
  "template": "  {%- if true -%}  x  {%- endif -%}  "
 },
 {
  "expected": "x y z",
  "template": "x  {{- ' y ' -}}  z"
 },
 {
  "expected": "  1\n  2\n",
  "template": "{% for i in [1,2] %}\n  {{ i }}\n{% endfor %}\n"
 },
 {
  "expected": "12",
  "template": "{% for i in [1,2] -%}\n  {{ i }}\n{%- endfor %}"
 },
 {
  "expected": "x",
  "template": "  {# comment #}\nx"
 },
 {
  "expected": "a  b",
  "template": "a {# c #} b"
 },
 {
  "expected": "ab",
  "template": "a\n  {#- c -#}\n  b"
 },
 {
  "expected": "a\nx\ny",
  "template": "a\n{%+ if true %}x{% endif +%}\ny"
 },
 {
  "expected": "a\nb",
  "template": "{{ 'a' }}\n{{ 'b' }}\n"
 },
 {
  "expected": "line1\nline2 1",
  "template": "line1\n    {% set x = 1 %}\nline2 {{ x }}"
 },
 {
  "expected": "\ttab",
  "template": "\t{% if true %}\ttab{% endif %}\n"
 },
 {
  "expected": "win\n",
  "template": "{% if true %}\r\nwin\r\n{% endif %}\r\n"
 },
 {
  "expected": "text only\n",
  "template": "text only\n\n"
 },
 {
  "expected": "x   y",
  "template": "{{ 'x' }}   {% if true %}y{% endif %}"
 },
 {
  "expected": "k",
  "template": "{%- for m in [1] %}\n    {{- 'k' }}\n{%- endfor %}\n"
 },
 {
  "expected": "x",
  "template": "{% raw -%}   x  {%- endraw %}"
 },
 {
  "expected": " r   \nz",
  "template": "  {% raw %} r {% endraw %}  \nz"
 },
 {
  "expected": "a\n  body\n|",
  "template": "a\n{% macro f() %}\n  body\n{% endmacro %}\n{{ f() }}|"
 },
 {
  "expected": "{'a': {'b': 1}}",
  "template": "{{ {'a': {'b': 1}} }}"
 },
 {
  "expected": "[1, 2]{'a': 1}(1, 2)",
  "template": "{{ [1, 2,] }}{{ {'a': 1,} }}{{ (1, 2,) }}"
 },
 {
  "expected": "2",
  "template": "{% set x = {'k': [1, {'z': 2}]} %}{{ x.k[1].z }}"
 },
 {
  "expected": "nd",
  "template": "{% if not x is defined %}nd{% endif %}"
 },
 {
  "expected": "nd2",
  "template": "{% if x is not defined %}nd2{% endif %}"
 },
 {
  "expected": "FL",
  "template": "{% for m in msgs %}{% if loop.first %}F{% elif loop.last %}L{% else %}M{% endif %}{% endfor %}"
 },
 {
  "expected": "14 24 34 ",
  "template": "{% for a in [1,2,3] %}{% for b in [4,5] %}{% if b == 5 %}{% break %}{% endif %}{{ a }}{{ b }} {% endfor %}{% endfor %}"
 },
 {
  "error": "UndefinedError",
  "template": "{{ x.y }}"
 },
 {
  "error": "UndefinedError",
  "template": "{{ u.x }}"
 },
 {
  "error": "UndefinedError",
  "template": "{{ u + 1 }}"
 },
 {
  "error": "TypeError",
  "template": "{{ n + 1 }}"
 },
 {
  "error": "TypeError",
  "template": "{{ 'a' + 1 }}"
 },
 {
  "error": "ZeroDivisionError",
  "template": "{{ 1 / 0 }}"
 },
 {
  "error": "ValueError",
  "template": "{{ l[1:2:0] }}"
 },
 {
  "expected": "",
  "template": "{{ n[0] }}"
 },
 {
  "error": "UndefinedError",
  "template": "{{ u() }}"
 },
 {
  "error": "UndefinedError",
  "template": "{{ s.nosuch() }}"
 },
 {
  "error": "SecurityError",
  "template": "{{ l.append(1) }}"
 },
 {
  "error": "TypeError",
  "template": "{% for x in 5 %}{% endfor %}"
 },
 {
  "raises": "boom",
  "template": "{{ raise_exception('boom') }}"
 },
 {
  "error": "TypeError",
  "template": "{{ 1 < 'a' }}"
 },
 {
  "expected": "('a', 1)",
  "template": "{{ d|items|first }}"
 },
 {
  "error": "TypeError",
  "template": "{{ 'a' in n }}"
 },
 {
  "error": "TypeError",
  "template": "{{ 1 in 'abc' }}"
 },
 {
  "expected": "\"x\"{\n--\"a\": 1,\n--\"b\": [\n----1,\n----2,\n----{\n------\"c\": \"x\"\n----}\n--],\n--\"items\": 5\n}",
  "template": "{{ 'x'|tojson(indent='\t') }}{{ d|tojson(indent='--') }}"
 },
 {
  "error": "ValueError",
  "template": "{% set a, b = [1] %}"
 },
 {
  "error": "OverflowError",
  "template": "{{ range(200000)|length }}"
 }
]
"""#

    static let conversations = #"""
[
 {
  "expected": "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Hello!"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Hello!"
   }
  ],
  "add_generation_prompt": true,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Hello!"
   }
  ],
  "add_generation_prompt": true,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>user\nHello!<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Hello!"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Hello!"
   }
  ],
  "add_generation_prompt": false,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>user\nHello!<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Hello!"
   }
  ],
  "add_generation_prompt": false,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>system\nSys<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nAnswer<|im_end|>\n<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "system",
    "content": "Sys"
   },
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nreasoning here\n</think>\n\nAnswer"
   },
   {
    "role": "user",
    "content": "More"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<|im_start|>system\nSys\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nAnswer<|im_end|>\n<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "system",
    "content": "Sys"
   },
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nreasoning here\n</think>\n\nAnswer"
   },
   {
    "role": "user",
    "content": "More"
   }
  ],
  "add_generation_prompt": true,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>system\nSys<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nAnswer<|im_end|>\n<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "system",
    "content": "Sys"
   },
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nreasoning here\n</think>\n\nAnswer"
   },
   {
    "role": "user",
    "content": "More"
   }
  ],
  "add_generation_prompt": true,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>system\nSys<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nAnswer<|im_end|>\n<|im_start|>user\nMore<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "system",
    "content": "Sys"
   },
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nreasoning here\n</think>\n\nAnswer"
   },
   {
    "role": "user",
    "content": "More"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<|im_start|>system\nSys\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nAnswer<|im_end|>\n<|im_start|>user\nMore<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "system",
    "content": "Sys"
   },
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nreasoning here\n</think>\n\nAnswer"
   },
   {
    "role": "user",
    "content": "More"
   }
  ],
  "add_generation_prompt": false,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>system\nSys<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nAnswer<|im_end|>\n<|im_start|>user\nMore<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "system",
    "content": "Sys"
   },
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nreasoning here\n</think>\n\nAnswer"
   },
   {
    "role": "user",
    "content": "More"
   }
  ],
  "add_generation_prompt": false,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nr1\n</think>\n\nA1<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nr1\n</think>\n\nA1"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nr1\n</think>\n\nA1<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nr1\n</think>\n\nA1"
   }
  ],
  "add_generation_prompt": true,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nr1\n</think>\n\nA1<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nr1\n</think>\n\nA1"
   }
  ],
  "add_generation_prompt": true,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nr1\n</think>\n\nA1<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nr1\n</think>\n\nA1"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nr1\n</think>\n\nA1<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nr1\n</think>\n\nA1"
   }
  ],
  "add_generation_prompt": false,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nr1\n</think>\n\nA1<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nr1\n</think>\n\nA1"
   }
  ],
  "add_generation_prompt": false,
  "enable_thinking": false
 },
 {
  "error": "TypeError",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": null,
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Paris\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "assistant",
    "content": "It is sunny."
   }
  ],
  "add_generation_prompt": true
 },
 {
  "error": "TypeError",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": null,
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Paris\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "assistant",
    "content": "It is sunny."
   }
  ],
  "add_generation_prompt": true,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "error": "TypeError",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": null,
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Paris\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "assistant",
    "content": "It is sunny."
   }
  ],
  "add_generation_prompt": true,
  "enable_thinking": false
 },
 {
  "error": "TypeError",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": null,
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Paris\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "assistant",
    "content": "It is sunny."
   }
  ],
  "add_generation_prompt": false
 },
 {
  "error": "TypeError",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": null,
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Paris\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "assistant",
    "content": "It is sunny."
   }
  ],
  "add_generation_prompt": false,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "error": "TypeError",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": null,
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Paris\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "assistant",
    "content": "It is sunny."
   }
  ],
  "add_generation_prompt": false,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Z\u00fcrich\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\nrain\n</tool_response><|im_end|>\n<|im_start|>user\nthanks<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": "",
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Paris",
        "days": 2
       }
      }
     },
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Z\u00fcrich\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "tool",
    "content": "rain"
   },
   {
    "role": "user",
    "content": "thanks"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Z\u00fcrich\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\nrain\n</tool_response><|im_end|>\n<|im_start|>user\nthanks<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": "",
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Paris",
        "days": 2
       }
      }
     },
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Z\u00fcrich\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "tool",
    "content": "rain"
   },
   {
    "role": "user",
    "content": "thanks"
   }
  ],
  "add_generation_prompt": true,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Z\u00fcrich\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\nrain\n</tool_response><|im_end|>\n<|im_start|>user\nthanks<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": "",
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Paris",
        "days": 2
       }
      }
     },
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Z\u00fcrich\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "tool",
    "content": "rain"
   },
   {
    "role": "user",
    "content": "thanks"
   }
  ],
  "add_generation_prompt": true,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Z\u00fcrich\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\nrain\n</tool_response><|im_end|>\n<|im_start|>user\nthanks<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": "",
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Paris",
        "days": 2
       }
      }
     },
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Z\u00fcrich\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "tool",
    "content": "rain"
   },
   {
    "role": "user",
    "content": "thanks"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Z\u00fcrich\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\nrain\n</tool_response><|im_end|>\n<|im_start|>user\nthanks<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": "",
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Paris",
        "days": 2
       }
      }
     },
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Z\u00fcrich\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "tool",
    "content": "rain"
   },
   {
    "role": "user",
    "content": "thanks"
   }
  ],
  "add_generation_prompt": false,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Z\u00fcrich\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\nrain\n</tool_response><|im_end|>\n<|im_start|>user\nthanks<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": "",
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Paris",
        "days": 2
       }
      }
     },
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Z\u00fcrich\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "tool",
    "content": "rain"
   },
   {
    "role": "user",
    "content": "thanks"
   }
  ],
  "add_generation_prompt": false,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n<think>\nthinking...\n</think>\n\nb<|im_end|>\n<|im_start|>user\n<tool_response>x</tool_response><|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "a"
   },
   {
    "role": "assistant",
    "content": "b",
    "reasoning_content": "thinking..."
   },
   {
    "role": "user",
    "content": "<tool_response>x</tool_response>"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n<think>\nthinking...\n</think>\n\nb<|im_end|>\n<|im_start|>user\n<tool_response>x</tool_response><|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "a"
   },
   {
    "role": "assistant",
    "content": "b",
    "reasoning_content": "thinking..."
   },
   {
    "role": "user",
    "content": "<tool_response>x</tool_response>"
   }
  ],
  "add_generation_prompt": true,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n<think>\nthinking...\n</think>\n\nb<|im_end|>\n<|im_start|>user\n<tool_response>x</tool_response><|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "a"
   },
   {
    "role": "assistant",
    "content": "b",
    "reasoning_content": "thinking..."
   },
   {
    "role": "user",
    "content": "<tool_response>x</tool_response>"
   }
  ],
  "add_generation_prompt": true,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n<think>\nthinking...\n</think>\n\nb<|im_end|>\n<|im_start|>user\n<tool_response>x</tool_response><|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "a"
   },
   {
    "role": "assistant",
    "content": "b",
    "reasoning_content": "thinking..."
   },
   {
    "role": "user",
    "content": "<tool_response>x</tool_response>"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n<think>\nthinking...\n</think>\n\nb<|im_end|>\n<|im_start|>user\n<tool_response>x</tool_response><|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "a"
   },
   {
    "role": "assistant",
    "content": "b",
    "reasoning_content": "thinking..."
   },
   {
    "role": "user",
    "content": "<tool_response>x</tool_response>"
   }
  ],
  "add_generation_prompt": false,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n<think>\nthinking...\n</think>\n\nb<|im_end|>\n<|im_start|>user\n<tool_response>x</tool_response><|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "a"
   },
   {
    "role": "assistant",
    "content": "b",
    "reasoning_content": "thinking..."
   },
   {
    "role": "user",
    "content": "<tool_response>x</tool_response>"
   }
  ],
  "add_generation_prompt": false,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>system\nS1<|im_end|>\n<|im_start|>system\nS2<|im_end|>\n<|im_start|>user\nu\r\nwith crlf \u00e9 \ud83d\ude00<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "system",
    "content": "S1"
   },
   {
    "role": "system",
    "content": "S2"
   },
   {
    "role": "user",
    "content": "u\r\nwith crlf \u00e9 \ud83d\ude00"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<|im_start|>system\nS1\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>system\nS2<|im_end|>\n<|im_start|>user\nu\r\nwith crlf \u00e9 \ud83d\ude00<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "system",
    "content": "S1"
   },
   {
    "role": "system",
    "content": "S2"
   },
   {
    "role": "user",
    "content": "u\r\nwith crlf \u00e9 \ud83d\ude00"
   }
  ],
  "add_generation_prompt": true,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>system\nS1<|im_end|>\n<|im_start|>system\nS2<|im_end|>\n<|im_start|>user\nu\r\nwith crlf \u00e9 \ud83d\ude00<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "system",
    "content": "S1"
   },
   {
    "role": "system",
    "content": "S2"
   },
   {
    "role": "user",
    "content": "u\r\nwith crlf \u00e9 \ud83d\ude00"
   }
  ],
  "add_generation_prompt": true,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>system\nS1<|im_end|>\n<|im_start|>system\nS2<|im_end|>\n<|im_start|>user\nu\r\nwith crlf \u00e9 \ud83d\ude00<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "system",
    "content": "S1"
   },
   {
    "role": "system",
    "content": "S2"
   },
   {
    "role": "user",
    "content": "u\r\nwith crlf \u00e9 \ud83d\ude00"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<|im_start|>system\nS1\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>system\nS2<|im_end|>\n<|im_start|>user\nu\r\nwith crlf \u00e9 \ud83d\ude00<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "system",
    "content": "S1"
   },
   {
    "role": "system",
    "content": "S2"
   },
   {
    "role": "user",
    "content": "u\r\nwith crlf \u00e9 \ud83d\ude00"
   }
  ],
  "add_generation_prompt": false,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>system\nS1<|im_end|>\n<|im_start|>system\nS2<|im_end|>\n<|im_start|>user\nu\r\nwith crlf \u00e9 \ud83d\ude00<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "system",
    "content": "S1"
   },
   {
    "role": "system",
    "content": "S2"
   },
   {
    "role": "user",
    "content": "u\r\nwith crlf \u00e9 \ud83d\ude00"
   }
  ],
  "add_generation_prompt": false,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>user\nx<|im_end|>\n<|im_start|>user\ny<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "user",
    "content": "y"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nx<|im_end|>\n<|im_start|>user\ny<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "user",
    "content": "y"
   }
  ],
  "add_generation_prompt": true,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>user\nx<|im_end|>\n<|im_start|>user\ny<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "user",
    "content": "y"
   }
  ],
  "add_generation_prompt": true,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>user\nx<|im_end|>\n<|im_start|>user\ny<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "user",
    "content": "y"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nx<|im_end|>\n<|im_start|>user\ny<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "user",
    "content": "y"
   }
  ],
  "add_generation_prompt": false,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>user\nx<|im_end|>\n<|im_start|>user\ny<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "user",
    "content": "y"
   }
  ],
  "add_generation_prompt": false,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>assistant\nstarts with assistant<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "assistant",
    "content": "starts with assistant"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>assistant\nstarts with assistant<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "assistant",
    "content": "starts with assistant"
   }
  ],
  "add_generation_prompt": true,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>assistant\nstarts with assistant<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "assistant",
    "content": "starts with assistant"
   }
  ],
  "add_generation_prompt": true,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>assistant\nstarts with assistant<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "assistant",
    "content": "starts with assistant"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>assistant\nstarts with assistant<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "assistant",
    "content": "starts with assistant"
   }
  ],
  "add_generation_prompt": false,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>assistant\nstarts with assistant<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "assistant",
    "content": "starts with assistant"
   }
  ],
  "add_generation_prompt": false,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "bogus",
    "content": "y"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "bogus",
    "content": "y"
   }
  ],
  "add_generation_prompt": true,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "bogus",
    "content": "y"
   }
  ],
  "add_generation_prompt": true,
  "enable_thinking": false
 },
 {
  "expected": "<|im_start|>user\nx<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "bogus",
    "content": "y"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather \u2014 for a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Z\u00fcrich\"]}, \"days\": {\"type\": \"integer\", \"default\": 3, \"minimum\": 1.5}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nx<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "bogus",
    "content": "y"
   }
  ],
  "add_generation_prompt": false,
  "tools": [
   {
    "type": "function",
    "function": {
     "name": "get_weather",
     "description": "Get weather \u2014 for a city",
     "parameters": {
      "type": "object",
      "properties": {
       "city": {
        "type": "string",
        "enum": [
         "Paris",
         "Z\u00fcrich"
        ]
       },
       "days": {
        "type": "integer",
        "default": 3,
        "minimum": 1.5
       }
      },
      "required": [
       "city"
      ]
     }
    }
   }
  ]
 },
 {
  "expected": "<|im_start|>user\nx<|im_end|>\n",
  "dir": "qwen3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "bogus",
    "content": "y"
   }
  ],
  "add_generation_prompt": false,
  "enable_thinking": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Hello!<\uff5cAssistant\uff5c>",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "user",
    "content": "Hello!"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Hello!",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "user",
    "content": "Hello!"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c>Sys<\uff5cUser\uff5c>Hi<\uff5cAssistant\uff5c><think>\nreasoning here\n</think>\n\nAnswer<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>More<\uff5cAssistant\uff5c>",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "system",
    "content": "Sys"
   },
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nreasoning here\n</think>\n\nAnswer"
   },
   {
    "role": "user",
    "content": "More"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c>Sys<\uff5cUser\uff5c>Hi<\uff5cAssistant\uff5c><think>\nreasoning here\n</think>\n\nAnswer<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>More",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "system",
    "content": "Sys"
   },
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nreasoning here\n</think>\n\nAnswer"
   },
   {
    "role": "user",
    "content": "More"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Hi<\uff5cAssistant\uff5c><think>\nr1\n</think>\n\nA1<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cAssistant\uff5c>",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nr1\n</think>\n\nA1"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Hi<\uff5cAssistant\uff5c><think>\nr1\n</think>\n\nA1<\uff5cend\u2581of\u2581sentence\uff5c>",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nr1\n</think>\n\nA1"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Weather?<\uff5cAssistant\uff5c><\uff5ctool\u2581calls\u2581begin\uff5c><\uff5ctool\u2581call\u2581begin\uff5c>function<\uff5ctool\u2581sep\uff5c>get_weather\n```json\n{\"city\": \"Paris\"}\n```<\uff5ctool\u2581call\u2581end\uff5c><\uff5ctool\u2581outputs\u2581begin\uff5c><\uff5ctool\u2581output\u2581begin\uff5c>sunny<\uff5ctool\u2581output\u2581end\uff5c><\uff5ctool\u2581outputs\u2581end\uff5c>It is sunny.<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cAssistant\uff5c>",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": null,
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Paris\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "assistant",
    "content": "It is sunny."
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Weather?<\uff5cAssistant\uff5c><\uff5ctool\u2581calls\u2581begin\uff5c><\uff5ctool\u2581call\u2581begin\uff5c>function<\uff5ctool\u2581sep\uff5c>get_weather\n```json\n{\"city\": \"Paris\"}\n```<\uff5ctool\u2581call\u2581end\uff5c><\uff5ctool\u2581outputs\u2581begin\uff5c><\uff5ctool\u2581output\u2581begin\uff5c>sunny<\uff5ctool\u2581output\u2581end\uff5c><\uff5ctool\u2581outputs\u2581end\uff5c>It is sunny.<\uff5cend\u2581of\u2581sentence\uff5c>",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": null,
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Paris\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "assistant",
    "content": "It is sunny."
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Weather?<\uff5cAssistant\uff5c><\uff5cend\u2581of\u2581sentence\uff5c><\uff5ctool\u2581outputs\u2581begin\uff5c><\uff5ctool\u2581output\u2581begin\uff5c>sunny<\uff5ctool\u2581output\u2581end\uff5c>\n<\uff5ctool\u2581output\u2581begin\uff5c>rain<\uff5ctool\u2581output\u2581end\uff5c><\uff5cUser\uff5c>thanks<\uff5cAssistant\uff5c>",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": "",
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Paris",
        "days": 2
       }
      }
     },
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Z\u00fcrich\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "tool",
    "content": "rain"
   },
   {
    "role": "user",
    "content": "thanks"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Weather?<\uff5cAssistant\uff5c><\uff5cend\u2581of\u2581sentence\uff5c><\uff5ctool\u2581outputs\u2581begin\uff5c><\uff5ctool\u2581output\u2581begin\uff5c>sunny<\uff5ctool\u2581output\u2581end\uff5c>\n<\uff5ctool\u2581output\u2581begin\uff5c>rain<\uff5ctool\u2581output\u2581end\uff5c><\uff5cUser\uff5c>thanks",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": "",
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Paris",
        "days": 2
       }
      }
     },
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Z\u00fcrich\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "tool",
    "content": "rain"
   },
   {
    "role": "user",
    "content": "thanks"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>a<\uff5cAssistant\uff5c>b<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c><tool_response>x</tool_response><\uff5cAssistant\uff5c>",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "user",
    "content": "a"
   },
   {
    "role": "assistant",
    "content": "b",
    "reasoning_content": "thinking..."
   },
   {
    "role": "user",
    "content": "<tool_response>x</tool_response>"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>a<\uff5cAssistant\uff5c>b<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c><tool_response>x</tool_response>",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "user",
    "content": "a"
   },
   {
    "role": "assistant",
    "content": "b",
    "reasoning_content": "thinking..."
   },
   {
    "role": "user",
    "content": "<tool_response>x</tool_response>"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c>S1\n\nS2<\uff5cUser\uff5c>u\r\nwith crlf \u00e9 \ud83d\ude00<\uff5cAssistant\uff5c>",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "system",
    "content": "S1"
   },
   {
    "role": "system",
    "content": "S2"
   },
   {
    "role": "user",
    "content": "u\r\nwith crlf \u00e9 \ud83d\ude00"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c>S1\n\nS2<\uff5cUser\uff5c>u\r\nwith crlf \u00e9 \ud83d\ude00",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "system",
    "content": "S1"
   },
   {
    "role": "system",
    "content": "S2"
   },
   {
    "role": "user",
    "content": "u\r\nwith crlf \u00e9 \ud83d\ude00"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>x<\uff5cUser\uff5c>y<\uff5cAssistant\uff5c>",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "user",
    "content": "y"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>x<\uff5cUser\uff5c>y",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "user",
    "content": "y"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cAssistant\uff5c>starts with assistant<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cAssistant\uff5c>",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "assistant",
    "content": "starts with assistant"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cAssistant\uff5c>starts with assistant<\uff5cend\u2581of\u2581sentence\uff5c>",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "assistant",
    "content": "starts with assistant"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>x<\uff5cAssistant\uff5c>",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "bogus",
    "content": "y"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>x",
  "dir": "deepseek-v3",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "bogus",
    "content": "y"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Hello!<\uff5cAssistant\uff5c>",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "user",
    "content": "Hello!"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Hello!",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "user",
    "content": "Hello!"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c>Sys<\uff5cUser\uff5c>Hi<\uff5cAssistant\uff5c>\n\nAnswer<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>More<\uff5cAssistant\uff5c>",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "system",
    "content": "Sys"
   },
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nreasoning here\n</think>\n\nAnswer"
   },
   {
    "role": "user",
    "content": "More"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c>Sys<\uff5cUser\uff5c>Hi<\uff5cAssistant\uff5c>\n\nAnswer<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>More",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "system",
    "content": "Sys"
   },
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nreasoning here\n</think>\n\nAnswer"
   },
   {
    "role": "user",
    "content": "More"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Hi<\uff5cAssistant\uff5c>\n\nA1<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cAssistant\uff5c>",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nr1\n</think>\n\nA1"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Hi<\uff5cAssistant\uff5c>\n\nA1<\uff5cend\u2581of\u2581sentence\uff5c>",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nr1\n</think>\n\nA1"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Weather?<\uff5cAssistant\uff5c><\uff5ctool\u2581calls\u2581begin\uff5c><\uff5ctool\u2581call\u2581begin\uff5c>function<\uff5ctool\u2581sep\uff5c>get_weather\n```json\n{\"city\": \"Paris\"}\n```<\uff5ctool\u2581call\u2581end\uff5c><\uff5ctool\u2581calls\u2581end\uff5c><\uff5cend\u2581of\u2581sentence\uff5c><\uff5ctool\u2581outputs\u2581begin\uff5c><\uff5ctool\u2581output\u2581begin\uff5c>sunny<\uff5ctool\u2581output\u2581end\uff5c><\uff5ctool\u2581outputs\u2581end\uff5c>It is sunny.<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cAssistant\uff5c>",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": null,
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Paris\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "assistant",
    "content": "It is sunny."
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Weather?<\uff5cAssistant\uff5c><\uff5ctool\u2581calls\u2581begin\uff5c><\uff5ctool\u2581call\u2581begin\uff5c>function<\uff5ctool\u2581sep\uff5c>get_weather\n```json\n{\"city\": \"Paris\"}\n```<\uff5ctool\u2581call\u2581end\uff5c><\uff5ctool\u2581calls\u2581end\uff5c><\uff5cend\u2581of\u2581sentence\uff5c><\uff5ctool\u2581outputs\u2581begin\uff5c><\uff5ctool\u2581output\u2581begin\uff5c>sunny<\uff5ctool\u2581output\u2581end\uff5c><\uff5ctool\u2581outputs\u2581end\uff5c>It is sunny.<\uff5cend\u2581of\u2581sentence\uff5c>",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": null,
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Paris\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "assistant",
    "content": "It is sunny."
   }
  ],
  "add_generation_prompt": false
 },
 {
  "error": "TypeError",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": "",
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Paris",
        "days": 2
       }
      }
     },
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Z\u00fcrich\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "tool",
    "content": "rain"
   },
   {
    "role": "user",
    "content": "thanks"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "error": "TypeError",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": "",
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Paris",
        "days": 2
       }
      }
     },
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Z\u00fcrich\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "tool",
    "content": "rain"
   },
   {
    "role": "user",
    "content": "thanks"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>a<\uff5cAssistant\uff5c>b<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c><tool_response>x</tool_response><\uff5cAssistant\uff5c>",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "user",
    "content": "a"
   },
   {
    "role": "assistant",
    "content": "b",
    "reasoning_content": "thinking..."
   },
   {
    "role": "user",
    "content": "<tool_response>x</tool_response>"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>a<\uff5cAssistant\uff5c>b<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c><tool_response>x</tool_response>",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "user",
    "content": "a"
   },
   {
    "role": "assistant",
    "content": "b",
    "reasoning_content": "thinking..."
   },
   {
    "role": "user",
    "content": "<tool_response>x</tool_response>"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c>S1\n\nS2<\uff5cUser\uff5c>u\r\nwith crlf \u00e9 \ud83d\ude00<\uff5cAssistant\uff5c>",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "system",
    "content": "S1"
   },
   {
    "role": "system",
    "content": "S2"
   },
   {
    "role": "user",
    "content": "u\r\nwith crlf \u00e9 \ud83d\ude00"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c>S1\n\nS2<\uff5cUser\uff5c>u\r\nwith crlf \u00e9 \ud83d\ude00",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "system",
    "content": "S1"
   },
   {
    "role": "system",
    "content": "S2"
   },
   {
    "role": "user",
    "content": "u\r\nwith crlf \u00e9 \ud83d\ude00"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>x<\uff5cUser\uff5c>y<\uff5cAssistant\uff5c>",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "user",
    "content": "y"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>x<\uff5cUser\uff5c>y",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "user",
    "content": "y"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cAssistant\uff5c>starts with assistant<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cAssistant\uff5c>",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "assistant",
    "content": "starts with assistant"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cAssistant\uff5c>starts with assistant<\uff5cend\u2581of\u2581sentence\uff5c>",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "assistant",
    "content": "starts with assistant"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>x<\uff5cAssistant\uff5c>",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "bogus",
    "content": "y"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>x",
  "dir": "deepseek-r1",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "bogus",
    "content": "y"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<s>[INST] Hello! [/INST]",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "user",
    "content": "Hello!"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<s>[INST] Hello! [/INST]",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "user",
    "content": "Hello!"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "raises": "Conversation roles must alternate user/assistant/user/assistant/...",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "system",
    "content": "Sys"
   },
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nreasoning here\n</think>\n\nAnswer"
   },
   {
    "role": "user",
    "content": "More"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "raises": "Conversation roles must alternate user/assistant/user/assistant/...",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "system",
    "content": "Sys"
   },
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nreasoning here\n</think>\n\nAnswer"
   },
   {
    "role": "user",
    "content": "More"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<s>[INST] Hi [/INST]<think>\nr1\n</think>\n\nA1</s>",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nr1\n</think>\n\nA1"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<s>[INST] Hi [/INST]<think>\nr1\n</think>\n\nA1</s>",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "user",
    "content": "Hi"
   },
   {
    "role": "assistant",
    "content": "<think>\nr1\n</think>\n\nA1"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "error": "TypeError",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": null,
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Paris\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "assistant",
    "content": "It is sunny."
   }
  ],
  "add_generation_prompt": true
 },
 {
  "error": "TypeError",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": null,
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Paris\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "assistant",
    "content": "It is sunny."
   }
  ],
  "add_generation_prompt": false
 },
 {
  "raises": "Conversation roles must alternate user/assistant/user/assistant/...",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": "",
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Paris",
        "days": 2
       }
      }
     },
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Z\u00fcrich\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "tool",
    "content": "rain"
   },
   {
    "role": "user",
    "content": "thanks"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "raises": "Conversation roles must alternate user/assistant/user/assistant/...",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "user",
    "content": "Weather?"
   },
   {
    "role": "assistant",
    "content": "",
    "tool_calls": [
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": {
        "city": "Paris",
        "days": 2
       }
      }
     },
     {
      "type": "function",
      "function": {
       "name": "get_weather",
       "arguments": "{\"city\": \"Z\u00fcrich\"}"
      }
     }
    ]
   },
   {
    "role": "tool",
    "content": "sunny"
   },
   {
    "role": "tool",
    "content": "rain"
   },
   {
    "role": "user",
    "content": "thanks"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "expected": "<s>[INST] a [/INST]b</s>[INST] <tool_response>x</tool_response> [/INST]",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "user",
    "content": "a"
   },
   {
    "role": "assistant",
    "content": "b",
    "reasoning_content": "thinking..."
   },
   {
    "role": "user",
    "content": "<tool_response>x</tool_response>"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "expected": "<s>[INST] a [/INST]b</s>[INST] <tool_response>x</tool_response> [/INST]",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "user",
    "content": "a"
   },
   {
    "role": "assistant",
    "content": "b",
    "reasoning_content": "thinking..."
   },
   {
    "role": "user",
    "content": "<tool_response>x</tool_response>"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "raises": "Conversation roles must alternate user/assistant/user/assistant/...",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "system",
    "content": "S1"
   },
   {
    "role": "system",
    "content": "S2"
   },
   {
    "role": "user",
    "content": "u\r\nwith crlf \u00e9 \ud83d\ude00"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "raises": "Conversation roles must alternate user/assistant/user/assistant/...",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "system",
    "content": "S1"
   },
   {
    "role": "system",
    "content": "S2"
   },
   {
    "role": "user",
    "content": "u\r\nwith crlf \u00e9 \ud83d\ude00"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "raises": "Conversation roles must alternate user/assistant/user/assistant/...",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "user",
    "content": "y"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "raises": "Conversation roles must alternate user/assistant/user/assistant/...",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "user",
    "content": "y"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "raises": "Conversation roles must alternate user/assistant/user/assistant/...",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "assistant",
    "content": "starts with assistant"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "raises": "Conversation roles must alternate user/assistant/user/assistant/...",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "assistant",
    "content": "starts with assistant"
   }
  ],
  "add_generation_prompt": false
 },
 {
  "raises": "Only user and assistant roles are supported!",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "bogus",
    "content": "y"
   }
  ],
  "add_generation_prompt": true
 },
 {
  "raises": "Only user and assistant roles are supported!",
  "dir": "mixtral-instruct",
  "messages": [
   {
    "role": "user",
    "content": "x"
   },
   {
    "role": "bogus",
    "content": "y"
   }
  ],
  "add_generation_prompt": false
 }
]
"""#
}
