// Validates prometheus-operator objects (JSON list on stdin) against the CRDs' schemas, as
// compiled by @kubernetes-models/prometheus-operator; prints a JSON list of problems.
// Run with node --input-type=module -e, in the directory the package is installed in.
import { readFileSync } from "node:fs";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const kinds = { PrometheusRule, ServiceMonitor };
const problems = [];
for (const doc of JSON.parse(readFileSync(0, "utf8"))) {
  const Model = kinds[doc.kind];
  if (!Model) { problems.push(`${doc.kind}: no CRD schema here`); continue; }
  try { new Model(doc).validate(); } catch (e) { problems.push(`${doc.kind} ${doc.metadata?.name}: ${e.message}`); }
}
process.stdout.write(JSON.stringify(problems));
