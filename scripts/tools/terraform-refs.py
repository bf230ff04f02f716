#!/usr/bin/env python3
"""What `terraform validate` would catch first, without providers (their registry is unreachable here): in every
module of terraform/, each var.X, local.X, data.T.N, T.N (resource) and module.M.OUT refers to something declared,
and every module call passes only known inputs and every required one. Text-based (HCL is not parsed), so it is a
net for typos and renames, not a validator. Run from the repository root: python3 scripts/tools/terraform-refs.py
"""
import glob
import os
import re
import sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "terraform"))

def read(d): return "\n".join(open(f).read() for f in sorted(glob.glob(d+"/*.tf")))
def strip_comments(s): return re.sub(r'(?m)^\s*#.*$','',s)
def decl(s,kind): return set(re.findall(r'(?m)^%s\s+"([^"]+)"'%kind,s))
def locals_(s):
    out=set()
    for m in re.finditer(r'(?m)^locals\s*\{',s):
        i=m.end(); depth=1; j=i
        while depth: 
            c=s[j]; depth+= c=='{'; depth-= c=='}'; j+=1
        body=s[i:j-1]
        # top-level keys: lines with exactly 2-space indentation
        out|=set(re.findall(r'(?m)^  ([A-Za-z_][A-Za-z0-9_-]*)\s*=',body))
    return out
def vars_with_default(s):
    res={}
    for m in re.finditer(r'(?m)^variable\s+"([^"]+)"\s*\{',s):
        i=m.end(); depth=1; j=i
        while depth:
            c=s[j]; depth+= c=='{'; depth-= c=='}'; j+=1
        res[m.group(1)]= bool(re.search(r'(?m)^\s*default\s*=',s[i:j-1]))
    return res
errors=[]
mods={'.':'.'}
for d in glob.glob('modules/*'): mods[d]=d
outputs={d:decl(strip_comments(read(d)),'output') for d in mods}
for d in mods:
    s=strip_comments(read(d))
    v=vars_with_default(s); l=locals_(s)
    for name in set(re.findall(r'\bvar\.([A-Za-z0-9_]+)',s)):
        if name not in v: errors.append(f"{d}: var.{name} not declared")
    for name in set(re.findall(r'\blocal\.([A-Za-z0-9_]+)',s)):
        if name not in l: errors.append(f"{d}: local.{name} not declared")
    # module calls
    for m in re.finditer(r'(?m)^module\s+"([^"]+)"\s*\{',s):
        i=m.end(); depth=1; j=i
        while depth:
            c=s[j]; depth+= c=='{'; depth-= c=='}'; j+=1
        body=s[i:j-1]; mname=m.group(1)
        src=re.search(r'source\s*=\s*"([^"]+)"',body).group(1)
        md=os.path.normpath(os.path.join(d,src))
        ms=strip_comments(read(md)); mv=vars_with_default(ms)
        args=set(re.findall(r'(?m)^  ([a-z_][a-z0-9_]*)\s*=',body))-{'source','count','for_each','depends_on','providers'}
        for a in args:
            if a not in mv: errors.append(f"{d}: module {mname} passes unknown input {a}")
        for k,hasdef in mv.items():
            if not hasdef and k not in args: errors.append(f"{d}: module {mname} misses required input {k}")
        for o in set(re.findall(r'\bmodule\.%s(?:\[[^\]]+\])?\.([A-Za-z0-9_]+)'%re.escape(mname),s)):
            if o not in decl(ms,'output'): errors.append(f"{d}: module.{mname}.{o} is not an output of {md}")
all_errors=list(errors)
errors=[]
for d in mods:
    s=strip_comments(read(d))
    s_nostr=re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: m.group(0) if '${' in m.group(0) else '""', s)
    res=set(re.findall(r'(?m)^resource\s+"([^"]+)"\s+"([^"]+)"',s))
    dat=set(re.findall(r'(?m)^data\s+"([^"]+)"\s+"([^"]+)"',s))
    for t,n in set(re.findall(r'(?<![\w.])data\.((?:aws|kubernetes|helm|tls|random|time|kafka)_[a-z0-9_]+)\.([a-z0-9_]+)',s_nostr)):
        if (t,n) not in dat: errors.append(f"{d}: data.{t}.{n} not declared")
    for t,n in set(re.findall(r'(?<![\w."])((?:aws|kubernetes|helm|tls|random|time|kafka)_[a-z0-9_]+)\.([a-z0-9_]+)',s_nostr)):
        if (t,n) not in res: errors.append(f"{d}: {t}.{n} not declared")
all_errors+=errors
print("\n".join(all_errors) or f"terraform references: ok ({len(mods)} modules)")
sys.exit(1 if all_errors else 0)
