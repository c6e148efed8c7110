#!/usr/bin/env bash
# The NuGet packages end to end (README "Packages"):
#   1. packs every library of src/ (Raft.Kernels, Raft.Cuda, Raft.Kernels.Cuda, Raft.Model, Raft.Teacher,
#      Raft.Distributed, Raft.Gpu, Raft.Pipeline; .nupkg + .snupkg) and the raft .NET tool into artifacts/feed;
#   2. checks each package (metadata, README, XML docs, symbols; the tool's size and that ONNX Runtime's CUDA/TensorRT
#      providers are left out);
#   3. installs the tool from the feed into a temporary tool path and runs `raft --help` and `raft plot`;
#   4. restores, builds and runs samples/Consumer against the feed.
# Steps 3 and 4 use a NuGet config and a package cache of their own (in a temporary folder), and no network: Raft.* and
# raft resolve from artifacts/feed only (package source mapping), third-party packages from the machine's package folder,
# so nothing can come from src/ or from an older package in the machine's cache; the script checks in the sample's
# project.assets.json that every Raft.* is that package.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

configuration=${CONFIGURATION:-Release}
feed=$PWD/artifacts/feed
libs=(Raft.Kernels Raft.Cuda Raft.Kernels.Cuda Raft.Model Raft.Teacher Raft.Distributed Raft.Gpu Raft.Pipeline)
# the version of src/Directory.Build.props (VersionPrefix)
version=$(dotnet msbuild src/Raft.Kernels -getProperty:Version -nologo)
max_tool_mb=${RAFT_TOOL_MAX_MB:-48}
start=$SECONDS
step() { echo "== pack-and-sample: $* ($((SECONDS - start)) s)"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/raft-pack.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- 1. pack ----
step "packing $version into $feed"
rm -rf "$feed"
mkdir -p "$feed"
# one MSBuild run over Raft.Packages.slnf (the 8 libraries and the tool; one process start instead of nine, ~50 s less
# on 2 cores): after README's test command nothing is compiled again, only packed (the tool: published, then packed)
dotnet pack Raft.Packages.slnf -c "$configuration" -p:PackageOutputPath="$feed/" -m:1 -v quiet -nologo

# ---- 2. check the packages ----
step "checking the packages"
python3 - "$feed" "$version" "$max_tool_mb" "${libs[@]}" <<'PY'
import os, sys, zipfile, xml.etree.ElementTree as ET
feed, version, max_mb, libs = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
bad = []
# Raft.Packages.slnf packs exactly these libraries and the tool, and the feed holds nothing else
import json
listed = sorted(os.path.basename(p)[:-len('.csproj')] for p in json.load(open('Raft.Packages.slnf'))['solution']['projects'])
if listed != sorted(libs + ['Raft.Cli']): bad.append(f'Raft.Packages.slnf lists {listed}, the script checks {sorted(libs)} + Raft.Cli')
# a new packable project under src/ must be added to Raft.Packages.slnf and to libs above
import glob
packable = sorted(os.path.basename(p)[:-len('.csproj')] for p in glob.glob('src/*/*.csproj')
                  if '<IsPackable>false</IsPackable>' not in open(p).read())
if packable != listed: bad.append(f'src/ has the packable projects {packable}, Raft.Packages.slnf lists {listed}')
want = {f'{p}.{version}.{ext}' for p in libs + ['raft'] for ext in ('nupkg', 'snupkg')}
extra = sorted(set(os.listdir(feed)) - want)
if extra: bad.append(f'{feed}: unexpected files {extra}')
def nuspec(z):
    name = next(n for n in z.namelist() if n.endswith('.nuspec') and '/' not in n)
    root = ET.fromstring(z.read(name))
    md = root.find('{*}metadata')
    return {child.tag.split('}')[1]: (child.text or '').strip() for child in md}
for pid in libs + ['raft']:
    pkg = os.path.join(feed, f'{pid}.{version}.nupkg')
    sym = os.path.join(feed, f'{pid}.{version}.snupkg')
    if not os.path.isfile(pkg): bad.append(f'{pkg}: missing'); continue
    if not os.path.isfile(sym): bad.append(f'{sym}: missing (IncludeSymbols + snupkg)')
    with zipfile.ZipFile(pkg) as z:
        names = z.namelist()
        md = nuspec(z)
        for key in ('id', 'version', 'authors', 'description', 'readme'):
            if not md.get(key): bad.append(f'{pkg}: nuspec has no <{key}>')
        if md.get('id') != pid or md.get('version') != version: bad.append(f'{pkg}: nuspec says {md.get("id")} {md.get("version")}')
        if md.get('authors') != 'Raft.Engine contributors': bad.append(f'{pkg}: authors {md.get("authors")!r}')
        if md.get('description') in ('', 'Package Description'): bad.append(f'{pkg}: no description of its own')
        if md.get('readme') not in names: bad.append(f'{pkg}: readme {md.get("readme")!r} not in the package')
        if pid == 'raft':
            size = os.path.getsize(pkg) / 2**20
            print(f'  raft (tool): {size:.1f} MB packed, {sum(i.file_size for i in z.infolist()) / 2**20:.1f} MB unpacked, {len(names)} files')
            if size > max_mb: bad.append(f'{pkg}: {size:.1f} MB, more than RAFT_TOOL_MAX_MB={max_mb:g}')
            if not any(n.endswith('/DotnetToolSettings.xml') for n in names): bad.append(f'{pkg}: not a .NET tool (no DotnetToolSettings.xml)')
            for so in ('libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_tensorrt.so'):
                if any(n.endswith('/' + so) for n in names): bad.append(f'{pkg}: holds {so} (should be left out)')
            if not any(n.endswith('/libonnxruntime.so') for n in names): bad.append(f'{pkg}: no libonnxruntime.so (the CPU provider)')
            # the demo worlds' bases travel with the tool, so that an installed `raft demo` finds them next to raft.dll
            for base in ('demo-base', 'demo-v2-base'):
                if f'tools/net10.0/any/models/{base}/model.safetensors' not in names: bad.append(f'{pkg}: no models/{base} (raft demo needs it)')
        else:
            for f in (f'lib/net10.0/{pid}.dll', f'lib/net10.0/{pid}.xml'):
                if f not in names: bad.append(f'{pkg}: no {f}')
            print(f'  {pid}: {os.path.getsize(pkg) / 1024:.0f} KB, depends on {", ".join(d.get("id") for d in ET.fromstring(z.read(pid + ".nuspec")).findall(".//{*}dependency"))}')
if bad:
    print('\n'.join('pack-and-sample: ' + b for b in bad), file=sys.stderr)
    sys.exit(1)
PY

# ---- an isolated NuGet, offline: Raft.* and raft from the feed only, everything else from the machine's own package
# folder read as a local feed (README's test command restored every third-party package the libraries depend on). No
# remote source: the restore below needs no network, and nothing can come from src/ or from an older Raft.* package.
machine_packages=$(dotnet nuget locals global-packages --list | sed -n 's/^global-packages: *//p')
machine_packages=${machine_packages%/}
[ -d "$machine_packages" ] || { echo "pack-and-sample: no machine package folder ($machine_packages): run README's test command (or dotnet restore Raft.Tests.slnf) first" >&2; exit 1; }
export NUGET_PACKAGES=$work/packages
config=$work/NuGet.Config
cat > "$config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="raft-feed" value="$feed" />
    <add key="machine-packages" value="$machine_packages" />
  </packageSources>
  <packageSourceMapping>
    <packageSource key="raft-feed"><package pattern="Raft.*" /><package pattern="raft" /></packageSource>
    <packageSource key="machine-packages"><package pattern="*" /></packageSource>
  </packageSourceMapping>
</configuration>
XML

# ---- 3. the tool ----
step "installing the raft tool from the feed"
dotnet tool install --tool-path "$work/tools" --configfile "$config" raft --version "$version"
"$work/tools/raft" --help > "$work/help.txt"
grep -q '^  demo ' "$work/help.txt" || { cat "$work/help.txt"; echo "pack-and-sample: raft --help lists no demo command" >&2; exit 1; }
"$work/tools/raft" --version | tee "$work/version.txt"
grep -q "^$version" "$work/version.txt" || { echo "pack-and-sample: raft --version is not $version" >&2; exit 1; }
# raft plot draws with ScottPlot/SkiaSharp: the tool's native libraries load
mkdir -p "$work/run"
for s in 1 2 3; do
  echo "{\"step\":$s,\"loss\":$((4 - s)).5,\"sft_loss\":$((4 - s)).5,\"w_sft\":1,\"grad_norm\":1,\"tokens\":100,\"tokens_per_s\":1000,\"lr\":0.001,\"train_s\":0.1,\"elapsed_s\":$s,\"skipped\":false}"
done > "$work/run/metrics.jsonl"
"$work/tools/raft" plot "$work/run" --out "$work/metrics.png"
[ -s "$work/metrics.png" ] || { echo "pack-and-sample: raft plot wrote no PNG" >&2; exit 1; }

# ---- 4. the sample against the packages ----
step "restoring, building and running samples/Consumer against the feed"
dotnet restore samples/Consumer --configfile "$config" -p:RaftPackageVersion="$version" --force -v quiet -nologo
python3 - samples/Consumer/obj/project.assets.json "$NUGET_PACKAGES" "$feed" "$version" <<'PY'
import hashlib, base64, json, os, sys
assets, cache, feed, version = sys.argv[1:]
libs = json.load(open(assets))['libraries']
raft = {k: v for k, v in libs.items() if k.lower().startswith('raft.')}
bad = [f'{k}: type {v["type"]}' for k, v in raft.items() if v['type'] != 'package']
for want in ('Raft.Kernels', 'Raft.Model'):
    key = f'{want}/{version}'
    if key not in raft: bad.append(f'{key}: not restored'); continue
    # the package in the isolated cache is byte for byte the one just packed
    sha = open(os.path.join(cache, want.lower(), version, f'{want.lower()}.{version}.nupkg.sha512')).read().strip()
    ours = base64.b64encode(hashlib.sha512(open(os.path.join(feed, f'{want}.{version}.nupkg'), 'rb').read()).digest()).decode()
    if sha != ours: bad.append(f'{key}: not the package in {feed}')
if bad:
    print('\n'.join('pack-and-sample: ' + b for b in bad), file=sys.stderr); sys.exit(1)
print('  sample restored ' + ', '.join(sorted(raft)) + ' from the feed (packages, no project)')
PY
dotnet build samples/Consumer -c "$configuration" --no-restore -p:RaftPackageVersion="$version" -v quiet -nologo
dotnet run --project samples/Consumer -c "$configuration" --no-build -p:RaftPackageVersion="$version"
# the checks can fail: with a 1 % error slipped into the fast results the sample must exit 1
set +e
dotnet run --project samples/Consumer -c "$configuration" --no-build -p:RaftPackageVersion="$version" -- --corrupt > "$work/corrupt.txt" 2>&1
rc=$?
set -e
if [ "$rc" -ne 1 ] || ! grep -q '^FAIL' "$work/corrupt.txt"; then
  cat "$work/corrupt.txt"; echo "pack-and-sample: samples/Consumer --corrupt exited $rc, expected 1 with FAIL lines" >&2; exit 1
fi
echo "  samples/Consumer --corrupt: exit 1, $(grep -c '^FAIL' "$work/corrupt.txt") checks failed as they should"

step "done"
