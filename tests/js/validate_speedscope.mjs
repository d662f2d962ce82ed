// Validates a speedscope file the way a reader of it would: against the JSON schema that the
// speedscope npm package ships (draft-07, checked by ajv), then the cross-references the schema
// cannot express (every frame index in range, one weight per sample).
// Usage: node validate_speedscope.mjs FILE.  Exit 0 and "valid" on stdout, or 1 and the
// problems on stderr (2 for a file that cannot be read or parsed).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import Ajv from "ajv";

const require = createRequire(import.meta.url);
const schemaPath = require.resolve("speedscope/dist/release/file-format-schema.json");
const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
if (schema.$schema !== "http://json-schema.org/draft-07/schema#") {
  console.error(`unexpected schema dialect ${schema.$schema} in ${schemaPath}`);
  process.exit(2);
}

let doc;
try {
  doc = JSON.parse(readFileSync(process.argv[2], "utf8"));
} catch (e) {
  console.error(`cannot read ${process.argv[2]}: ${e.message}`);
  process.exit(2);
}

const validate = new Ajv({ allErrors: true }).compile(schema);
const problems = [];
if (!validate(doc)) {
  for (const e of validate.errors) problems.push(`schema: ${e.instancePath || "/"} ${e.message}`);
} else {
  const nframes = doc.shared.frames.length;
  doc.profiles.forEach((p, i) => {
    if (p.type !== "sampled") return;
    if (p.samples.length !== p.weights.length)
      problems.push(`profile ${i}: ${p.samples.length} samples but ${p.weights.length} weights`);
    p.samples.forEach((s, j) => {
      for (const f of s)
        if (!Number.isInteger(f) || f < 0 || f >= nframes)
          problems.push(`profile ${i} sample ${j}: frame index ${f} not in 0..${nframes - 1}`);
    });
  });
  if (doc.activeProfileIndex !== undefined && !(doc.activeProfileIndex < doc.profiles.length))
    problems.push(`activeProfileIndex ${doc.activeProfileIndex} past the ${doc.profiles.length} profiles`);
}
if (problems.length) {
  console.error(problems.slice(0, 20).join("\n"));
  process.exit(1);
}
console.log("valid");
