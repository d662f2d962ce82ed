// `export --format pprof` and `diff --format pprof` (docs/exports.md, "pprof"): google/pprof's
// profile.proto (proto/profile.proto), encoded with protozero and gzipped with zlib.
#include <zlib.h>

#include <algorithm>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <cstdio>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <protozero/pbf_writer.hpp>

#include "report/diff.h"
#include "report/profile.h"
#include "report/render.h"

namespace leakscope::report {

namespace {

// Field numbers of profile.proto, by message.
enum ProfileField : protozero::pbf_tag_type {
  kSampleType = 1, kSample = 2, kMapping = 3, kLocation = 4, kFunction = 5, kStringTable = 6,
  kDropFrames = 7, kTimeNanos = 9, kDurationNanos = 10, kPeriodType = 11, kPeriod = 12, kComment = 13,
  kDefaultSampleType = 14,
};
enum ValueTypeField : protozero::pbf_tag_type { kVtType = 1, kVtUnit = 2 };
enum SampleField : protozero::pbf_tag_type { kSampleLocationId = 1, kSampleValue = 2, kSampleLabel = 3 };
enum LabelField : protozero::pbf_tag_type { kLabelKey = 1, kLabelStr = 2 };
enum MappingField : protozero::pbf_tag_type {
  kMapId = 1, kMapStart = 2, kMapLimit = 3, kMapOffset = 4, kMapFilename = 5, kMapBuildId = 6,
  kMapHasFunctions = 7, kMapHasFilenames = 8, kMapHasLineNumbers = 9, kMapHasInlineFrames = 10,
};
enum LocationField : protozero::pbf_tag_type { kLocId = 1, kLocMappingId = 2, kLocAddress = 3, kLocLine = 4 };
enum LineField : protozero::pbf_tag_type { kLineFunctionId = 1, kLineLine = 2 };
enum FunctionField : protozero::pbf_tag_type { kFnId = 1, kFnName = 2, kFnSystemName = 3, kFnFilename = 4 };

// The allocator's entry points. pprof drops frames whose function fully matches drop_frames,
// and everything they call, so memory is charged to the code that asked for it (what Go's heap
// profiles show) rather than to `operator new`. The frames stay in the file.
constexpr const char* kAllocatorFrames =
    "malloc|calloc|realloc|reallocarray|posix_memalign|aligned_alloc|memalign|valloc|pvalloc|"
    "operator new|operator new\\[\\]|mmap|mmap64|strdup|strndup";

struct ValueType {
  const char* type;
  const char* unit;
};
constexpr ValueType kProfileTypes[] = {
    {"inuse_objects", "count"}, {"inuse_space", "bytes"}, {"alloc_objects", "count"}, {"alloc_space", "bytes"}};
// A Diff compares live figures only: the growth of each.
constexpr ValueType kDiffTypes[] = {{"inuse_objects", "count"}, {"inuse_space", "bytes"}};

std::string hex_bytes(const std::string& raw) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

// One native module as a Mapping: the span of its PT_LOAD segments, page-aligned as the loader
// maps them. The first PT_LOAD segment of a linked ELF file starts at file offset 0, hence the
// offset. The has_* flags are filled in as its locations are added.
struct Mapping {
  uint64_t start = 0, limit = 0;
  std::string filename, build_id;  // build id in hex, as `readelf -n` prints it
  size_t locations = 0, with_function = 0, with_file = 0, with_line = 0;
  bool inline_frames = false;
};

struct Line {
  uint64_t function_id;
  int64_t line;
};
struct Location {
  uint64_t mapping_id = 0, address = 0;
  std::vector<Line> lines;  // innermost first; more than one when calls were inlined
};
struct Function {
  std::string name, system_name, filename;
};
struct Sample {
  std::vector<uint64_t> location_ids;  // leaf first
  std::vector<int64_t> values;
  std::string layer;
};

// Everything before encoding: strings, functions and locations interned by key so identical
// frames share one Location and one Function.
class PprofBuilder {
 public:
  explicit PprofBuilder(const std::vector<capture::Module>& modules) {
    strings_.emplace_back();  // string_table[0] must be ""
    string_ids_.emplace("", 0);
    for (const capture::Module& m : modules) {
      if (m.segments.empty()) continue;
      Mapping mp;
      mp.start = UINT64_MAX;
      for (const auto& [vaddr, memsz] : m.segments) {
        mp.start = std::min(mp.start, (m.load_bias + vaddr) & ~uint64_t{4095});
        mp.limit = std::max(mp.limit, (m.load_bias + vaddr + memsz + 4095) & ~uint64_t{4095});
      }
      mp.filename = m.path;
      mp.build_id = hex_bytes(m.build_id);
      // a module described twice (an attach, a dlopen seen again) is one mapping
      if (std::none_of(mappings_.begin(), mappings_.end(), [&](const Mapping& o) {
            return o.start == mp.start && o.limit == mp.limit && o.filename == mp.filename;
          }))
        mappings_.push_back(std::move(mp));
    }
  }

  void add_sample(const std::string& layer, const std::vector<FrameOut>& frames, std::vector<int64_t> values) {
    Sample s{{}, std::move(values), layer};
    // pprof drops a sample without locations from every view: a site whose stack was not
    // recorded gets one location named as `report` shows it.
    if (frames.empty()) {
      FrameOut none;
      none.function = "<no stack>";
      s.location_ids.push_back(python_location(none));
    }
    for (size_t i = 0; i < frames.size();) {
      if (!frames[i].native) {
        s.location_ids.push_back(python_location(frames[i]));
        ++i;
        continue;
      }
      // Frames at one address are one instruction with its inlined callers (report/sites.cpp).
      size_t j = i + 1;
      while (j < frames.size() && frames[j].native && frames[j].address == frames[i].address) ++j;
      s.location_ids.push_back(native_location(frames, i, j));
      i = j;
    }
    samples_.push_back(std::move(s));
  }

  struct Header {
    std::span<const ValueType> types;
    int64_t period = 1;  // bytes between samples; 1: every allocation recorded
    int64_t time_nanos = 0, duration_nanos = 0;
    std::vector<std::string> comments;
    const char* default_type = "inuse_space";  // one of `types`
  };

  // The encoded profile.proto message, not yet compressed.
  std::string encode(const Header& h) {
    // Intern every header string first: the string table is written last.
    std::vector<std::pair<int64_t, int64_t>> types;
    for (const ValueType& t : h.types) types.emplace_back(str(t.type), str(t.unit));
    const int64_t layer_key = str("layer"), space = str("space"), bytes = str("bytes"), default_type = str(h.default_type);
    const int64_t drop = str(kAllocatorFrames);
    std::vector<int64_t> comments;
    for (const std::string& c : h.comments) comments.push_back(str(c));
    std::vector<int64_t> layers;
    for (const Sample& s : samples_) layers.push_back(str(s.layer));

    std::string out;
    protozero::pbf_writer pw{out};
    for (const auto& [type, unit] : types) {
      protozero::pbf_writer vt{pw, kSampleType};
      vt.add_int64(kVtType, type);
      vt.add_int64(kVtUnit, unit);
    }
    for (size_t i = 0; i < samples_.size(); ++i) {
      const Sample& s = samples_[i];
      protozero::pbf_writer sw{pw, kSample};
      sw.add_packed_uint64(kSampleLocationId, s.location_ids.begin(), s.location_ids.end());
      sw.add_packed_int64(kSampleValue, s.values.begin(), s.values.end());
      protozero::pbf_writer lw{sw, kSampleLabel};
      lw.add_int64(kLabelKey, layer_key);
      lw.add_int64(kLabelStr, layers[i]);
    }
    encode_mappings(pw);
    encode_locations(pw);
    encode_functions(pw);
    pw.add_int64(kDropFrames, drop);
    if (h.time_nanos) pw.add_int64(kTimeNanos, h.time_nanos);
    if (h.duration_nanos) pw.add_int64(kDurationNanos, h.duration_nanos);
    {
      protozero::pbf_writer vt{pw, kPeriodType};
      vt.add_int64(kVtType, space);
      vt.add_int64(kVtUnit, bytes);
    }
    pw.add_int64(kPeriod, h.period);
    for (int64_t c : comments) pw.add_int64(kComment, c);
    pw.add_int64(kDefaultSampleType, default_type);
    for (const std::string& s : strings_) pw.add_string(kStringTable, s);
    return out;
  }

 private:
  int64_t str(const std::string& s) {
    auto [it, fresh] = string_ids_.emplace(s, static_cast<int64_t>(strings_.size()));
    if (fresh) strings_.push_back(s);
    return it->second;
  }

  // system_name: the native name as the symbolizer gave it; empty for Python, which has no
  // other name. pprof "demangles" a system_name equal to the name by cutting `<...>` and
  // `(...)` out of it, which would turn `<module>` into `<unknown>` and `f.<locals>.g` into
  // `f..g`; a Function whose system_name differs from its name is left as it is.
  uint64_t function(const std::string& name, const std::string& file, bool native) {
    std::string key = name + '\0' + file + (native ? "\0n" : "");
    auto [it, fresh] = function_ids_.emplace(std::move(key), functions_.size() + 1);
    if (fresh) functions_.push_back(Function{name, native ? name : std::string(), file});
    return it->second;
  }

  uint64_t python_location(const FrameOut& f) {
    const std::string name = f.function.empty() ? "<unknown>" : f.function;
    std::string key = std::string("py") + '\0' + name + '\0' + f.file + '\0' + std::to_string(f.line);
    auto [it, fresh] = location_ids_.emplace(std::move(key), locations_.size() + 1);
    if (fresh) locations_.push_back(Location{0, 0, {Line{function(name, f.file, false), f.line}}});
    return it->second;
  }

  // frames[begin, end): one address, innermost first.
  uint64_t native_location(const std::vector<FrameOut>& frames, size_t begin, size_t end) {
    const uint64_t address = frames[begin].address;
    std::string key = std::string("native") + '\0' + std::to_string(address);
    for (size_t k = begin; k < end; ++k)
      key += '\0' + frames[k].function + '\0' + frames[k].file + '\0' + std::to_string(frames[k].line);
    auto [it, fresh] = location_ids_.emplace(std::move(key), locations_.size() + 1);
    if (!fresh) return it->second;
    Location loc{0, address, {}};
    bool files = true, line_numbers = true;  // of every named frame here
    for (size_t k = begin; k < end; ++k) {
      const FrameOut& f = frames[k];
      if (f.function.empty() || f.function == "??") continue;  // not symbolized: the address only
      loc.lines.push_back(Line{function(f.function, f.file, true), f.line});
      files &= !f.file.empty();
      line_numbers &= f.line > 0;
    }
    for (size_t m = 0; m < mappings_.size(); ++m) {
      Mapping& mp = mappings_[m];
      if (address < mp.start || address >= mp.limit) continue;
      loc.mapping_id = m + 1;
      const bool named = !loc.lines.empty();
      ++mp.locations;
      mp.with_function += named;
      mp.with_file += named && files;
      mp.with_line += named && line_numbers;
      mp.inline_frames |= loc.lines.size() > 1;
      break;
    }
    locations_.push_back(std::move(loc));
    return it->second;
  }

  void encode_mappings(protozero::pbf_writer& pw) {
    for (size_t m = 0; m < mappings_.size(); ++m) {
      const Mapping& mp = mappings_[m];
      protozero::pbf_writer w{pw, kMapping};
      w.add_uint64(kMapId, m + 1);
      w.add_uint64(kMapStart, mp.start);
      w.add_uint64(kMapLimit, mp.limit);
      w.add_uint64(kMapOffset, 0);
      w.add_int64(kMapFilename, str(mp.filename));
      if (!mp.build_id.empty()) w.add_int64(kMapBuildId, str(mp.build_id));
      // True only when every location in the mapping has it (a mapping with none claims none).
      const bool used = mp.locations > 0;
      w.add_bool(kMapHasFunctions, used && mp.with_function == mp.locations);
      w.add_bool(kMapHasFilenames, used && mp.with_file == mp.locations);
      w.add_bool(kMapHasLineNumbers, used && mp.with_line == mp.locations);
      w.add_bool(kMapHasInlineFrames, mp.inline_frames);
    }
  }

  void encode_locations(protozero::pbf_writer& pw) {
    for (size_t l = 0; l < locations_.size(); ++l) {
      const Location& loc = locations_[l];
      protozero::pbf_writer w{pw, kLocation};
      w.add_uint64(kLocId, l + 1);
      if (loc.mapping_id) w.add_uint64(kLocMappingId, loc.mapping_id);
      if (loc.address) w.add_uint64(kLocAddress, loc.address);
      for (const Line& ln : loc.lines) {
        protozero::pbf_writer lw{w, kLocLine};
        lw.add_uint64(kLineFunctionId, ln.function_id);
        lw.add_int64(kLineLine, ln.line);
      }
    }
  }

  void encode_functions(protozero::pbf_writer& pw) {
    for (size_t i = 0; i < functions_.size(); ++i) {
      const Function& fn = functions_[i];
      const int64_t name = str(fn.name), system_name = str(fn.system_name), file = str(fn.filename);
      protozero::pbf_writer w{pw, kFunction};
      w.add_uint64(kFnId, i + 1);
      w.add_int64(kFnName, name);
      if (system_name) w.add_int64(kFnSystemName, system_name);
      w.add_int64(kFnFilename, file);
    }
  }

  std::vector<std::string> strings_;
  std::unordered_map<std::string, int64_t> string_ids_;
  std::vector<Mapping> mappings_;
  std::vector<Location> locations_;
  std::unordered_map<std::string, uint64_t> location_ids_;
  std::vector<Function> functions_;
  std::unordered_map<std::string, uint64_t> function_ids_;
  std::vector<Sample> samples_;
};

// The whole buffer as one gzip member (what pprof expects on disk).
std::string gzip(const std::string& raw) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::bad_alloc();
  std::string out(deflateBound(&zs, raw.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  // deflateBound is enough for one Z_FINISH call; anything else is zlib out of memory.
  if (rc != Z_STREAM_END) throw std::bad_alloc();
  return out;
}

int64_t rounded(double v) { return std::isfinite(v) ? static_cast<int64_t>(std::llround(v)) : 0; }

std::string seconds(double s) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.3f s", s);
  return buf;
}

// Which moment of which capture, as the text diff says it: the state used and the time asked.
std::string side_text(const DiffSide& s) {
  std::string asked = s.requested_s ? " (asked: @" + seconds(*s.requested_s) + ")" : "";
  if (s.start) return s.path + " at its start" + asked;
  if (s.end) return s.path + " at its end, " + seconds(s.at_s) + asked;
  return s.path + " at " + seconds(s.at_s) + ", the last snapshot by @" + seconds(s.requested_s.value_or(s.at_s));
}

}  // namespace

std::string pprof_document(const Profile& p, const RenderOptions& opt) {
  PprofBuilder b(p.modules);
  for (const ProfileSample& s : p.samples)
    b.add_sample(s.layer, s.frames,
                 {rounded(s.inuse_count), rounded(s.inuse_bytes), rounded(s.alloc_count), rounded(s.alloc_bytes)});
  PprofBuilder::Header h;
  h.types = kProfileTypes;
  for (const ValueType& t : kProfileTypes)
    if (opt.pprof_sample_type && std::string_view(opt.pprof_sample_type) == t.type) h.default_type = t.type;
  if (p.sample_rate) h.period = static_cast<int64_t>(std::min<uint64_t>(p.sample_rate, INT64_MAX));
  h.duration_nanos = rounded(p.at_s * 1e9);
  h.time_nanos = static_cast<int64_t>(std::min<uint64_t>(p.start_unix_ns, INT64_MAX / 2)) + h.duration_nanos;
  std::string cmd;
  for (const std::string& a : p.argv) cmd += (cmd.empty() ? "" : " ") + a;
  h.comments.push_back("leakscope export of " + p.path + " (pid " + std::to_string(p.pid) +
                       (cmd.empty() ? "" : ": " + cmd) + "): live memory " + (p.at_end ? "at the end, " : "at ") +
                       seconds(p.at_s) + " after the start");
  h.comments.insert(h.comments.end(), p.notes.begin(), p.notes.end());
  return gzip(b.encode(h));
}

std::string pprof_diff_document(const Diff& d, const RenderOptions&) {
  PprofBuilder b({});  // a Diff keeps no modules: native locations have addresses but no mapping
  for (const DiffSite& s : d.sites)
    if (s.delta_bytes() || s.delta_count()) b.add_sample(s.layer, s.frames, {s.delta_count(), s.delta_bytes()});
  PprofBuilder::Header h;
  h.types = kDiffTypes;
  if (const uint64_t rate = std::max(d.a.sample_rate, d.b.sample_rate))
    h.period = static_cast<int64_t>(std::min<uint64_t>(rate, INT64_MAX));
  h.comments.push_back("leakscope diff: growth of live memory per site from " + side_text(d.a) + " to " +
                       side_text(d.b) + " (values are B minus A; negative where a site shrank)");
  if (d.a.sample_rate || d.b.sample_rate)
    h.comments.push_back("allocations were sampled: values are unbiased estimates");
  h.comments.insert(h.comments.end(), d.warnings.begin(), d.warnings.end());
  return gzip(b.encode(h));
}

}  // namespace leakscope::report
