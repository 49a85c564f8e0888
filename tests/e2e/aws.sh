#!/usr/bin/env bash
# End-to-end test of the AWS deployment (deploy/aws/) against an emulator: moto's server mode
# (S3, IAM, STS and CloudFormation on one port; PyPI; started on loopback, fails loudly if it
# cannot start):
#
#   tests/e2e/aws.sh [WORK_DIR]            # default WORK_DIR: target/e2e-aws (recreated)
#
# 1. cfn-lint (informational checks too) and checkov on deploy/aws/template.yaml, and checkov
#    over deploy/aws: no finding, and every skipped check gives its reason;
# 2. deploy/aws/setup.sh creates the lake, checkpoint and access-log buckets; a second run
#    changes nothing ("0 changes", every line "unchanged"); `aws s3api get-bucket-*` reads back
#    each setting's values: versioning, SSE-S3, the four public-access flags, ACLs off, the
#    lifecycle rules (the checkpoint's under the prefix of CHECKPOINT_LOCATION), TLS-only
#    policies, access logging;
# 3. moto's CloudFormation creates the stack of template.yaml: its outputs are the engine's
#    OUTPUT_PATH, CHECKPOINT_LOCATION, KAFKA_BROKERS and AWS_REGION; the role trusts the
#    cluster's OIDC provider for the engine's service account only; the managed policy is
#    engine-policy.json (as `setup.sh --policy-out` renders it), statement for statement;
# 4. with moto enforcing IAM, the engine runs as a user holding nothing but engine-policy.json:
#    that user is denied the access-log bucket and bucket settings; the bounded job (-w 2)
#    writes s3://LAKE/tables with --checkpoint s3://CKPT/job, is SIGKILLed once after its
#    second commit record, and is restarted to completion (it resumes from the records);
#    `analytics check` and `analytics diff` against a local run pass as the same user; the
#    lake holds only tables and nothing uncommitted, the checkpoint bucket only the records,
#    all under the lifecycle rule's prefix.
# Prints its wall time. Expects release binaries in target/release (scripts/test.sh builds them).
#
# Three moto 5.2 bugs are worked around here, never in deploy/aws (each is in moto's code, not
# AWS's behaviour): a Deny statement with a condition moto cannot evaluate (`Bool`
# aws:SecureTransport) denies everything, so the TLS-only bucket policies are removed after
# being checked and before the engine runs; moto's SigV4 check rejects requests whose query
# holds an encoded '/' (every ListObjectsV2 with prefix=job/, from the AWS CLI as from the
# engine), so the server runs with signature checking off (access keys and policies are still
# enforced); moto authorizes DeleteObjects (POST ?delete) against the bucket's ARN where AWS
# checks s3:DeleteObject on each key's ARN, so the test user gets that one extra grant.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$EPOCHREALTIME

source tests/e2e/common.sh

WORK=${1:-target/e2e-aws}
LAKE=iot-etl-lake-e2e CKPT=iot-etl-checkpoints-e2e LOGS=iot-etl-access-logs-e2e JOB=job
# checkov pins its own boto3 (installed next to the AWS CLI it breaks its botocore): it lives
# in the virtualenv that scripts/security-check.sh installs it into, appended to PATH so that
# the virtualenv's python3 does not hide the one that holds moto, boto3 and the AWS CLI.
TOOLS=${SECURITY_TOOLS:-$HOME/.cache/iot-etl-security}
CHECKOV_VERSION=3.3.30
export PATH="$PATH:$TOOLS/venv/bin"

need_moto
if ! command -v aws >/dev/null 2>&1; then
  step "installing awscli (PyPI)"
  python3 -m pip install --quiet awscli || fail "cannot install awscli from PyPI"
fi
if ! command -v cfn-lint >/dev/null 2>&1; then
  step "installing cfn-lint (PyPI)"
  python3 -m pip install --quiet cfn-lint || fail "cannot install cfn-lint from PyPI"
fi
if ! command -v checkov >/dev/null 2>&1; then
  step "installing checkov==$CHECKOV_VERSION (PyPI) into $TOOLS/venv"
  { [ -x "$TOOLS/venv/bin/python" ] || python3 -m venv "$TOOLS/venv"; } || fail "cannot create $TOOLS/venv"
  "$TOOLS/venv/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" \
    || fail "cannot install checkov from PyPI"
fi

rm -rf "$WORK" && mkdir -p "$WORK"
expect() { # WHAT GOT WANT
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
  echo "ok  $1: $3"
}

step "cfn-lint $(cfn-lint --version | awk '{print $2}') and checkov $(checkov --version) on deploy/aws"
cfn-lint --include-checks I -- deploy/aws/template.yaml || fail "cfn-lint found the problems above in deploy/aws/template.yaml"
echo "cfn-lint: no finding"
checkov_report() { # WHAT ARGS...: checkov with ARGS; prints its summary and every skip with its reason
  rm -rf "$WORK/checkov"
  checkov "${@:2}" --skip-download --output json --output-file-path "$WORK/checkov" > /dev/null || true # judged from the report
  python3 - "$WORK/checkov/results_json.json" "$1" <<'PY'
import json, sys
reports = json.load(open(sys.argv[1]))
reports = reports if isinstance(reports, list) else [reports]
bad = []
if not any(r["check_type"] == "cloudformation" and r["summary"]["resource_count"] > 0 for r in reports):
    bad.append("no CloudFormation resource was scanned")
for r in reports:
    s, res = r["summary"], r["results"]
    print(f"checkov {sys.argv[2]}, {r['check_type']}: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped, {s['parsing_errors']} files not parsed")
    bad += [f"FAILED {c['check_id']} {c['check_name']} ({c['resource']})" for c in res.get("failed_checks", [])]
    bad += [f"NOT PARSED {f}" for f in res.get("parsing_errors", [])]
    for c in res.get("skipped_checks", []):
        reason = (c["check_result"].get("suppress_comment") or "").strip()
        print(f"  skipped {c['check_id']} ({c['resource']}): {reason or 'NO REASON'}")
        if len(reason) < 20:
            bad.append(f"{c['check_id']} on {c['resource']} is skipped without a reason")
if bad:
    sys.exit("\n".join(bad))
PY
}
checkov_report deploy/aws/template.yaml --file deploy/aws/template.yaml || fail "checkov on deploy/aws/template.yaml (above)"
checkov_report "deploy/aws (all frameworks)" --directory deploy/aws || fail "checkov over deploy/aws (above)"

step "starting moto_server (S3, IAM, STS, CloudFormation) on 127.0.0.1"
start_moto "$WORK/moto.log" 'import moto.iam.access_control as ac
ac.IAMRequestBase.check_signature = lambda self: None  # moto 5.2 SigV4 bug, see the header'
trap 'kill $MOTO 2>/dev/null || true; jobs -p | xargs -r kill -9 2>/dev/null || true' EXIT
# Until IAM is enforced (below) moto takes any key; then these become the admin user's.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
awsx() { aws --endpoint-url "$MOTO_URL" --region us-east-1 --output text "$@"; }

step "deploy/aws/setup.sh, twice"
setup() { deploy/aws/setup.sh --lake-bucket "$LAKE" --checkpoint-bucket "$CKPT" --checkpoint-prefix "$JOB" \
  --log-bucket "$LOGS" --endpoint-url "$MOTO_URL" --policy-out "$WORK/engine-policy.json"; }
t0=$EPOCHREALTIME
setup > "$WORK/setup-1.txt" || { cat "$WORK/setup-1.txt"; fail "setup.sh failed on its first run"; }
t1=$EPOCHREALTIME
setup > "$WORK/setup-2.txt" || { cat "$WORK/setup-2.txt"; fail "setup.sh failed on its second run"; }
t2=$EPOCHREALTIME
echo "-- the second run's output:"
sed 's/^/   | /' "$WORK/setup-2.txt"
grep -q '^setup.sh: 0 changes$' "$WORK/setup-2.txt" || fail "the second run of setup.sh changed something: $(grep -m3 '(set)' "$WORK/setup-2.txt")"
settings=$(grep -c '^   ' "$WORK/setup-2.txt")
[ "$(grep -c '^   .*(unchanged)$' "$WORK/setup-2.txt")" = "$settings" ] || fail "a line of the second run is not 'unchanged' (above)"
expect "first run's changes" "$(grep -c '(set)$' "$WORK/setup-1.txt")" "$(sed -n 's/^setup.sh: \([0-9]*\) changes$/\1/p' "$WORK/setup-1.txt")"
[ "$(grep -c '(set)$' "$WORK/setup-1.txt")" -ge 20 ] || fail "the first run set fewer than 20 settings: $(cat "$WORK/setup-1.txt")"
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "setup.sh: first run %.1f s, second run %.1f s (%d settings, all unchanged)\n", b - a, c - b, '"$settings"' }'
grep -qx "  CHECKPOINT_LOCATION=s3://$CKPT/$JOB" "$WORK/setup-2.txt" || fail "setup.sh does not print CHECKPOINT_LOCATION=s3://$CKPT/$JOB"

step "the buckets' settings, read back with aws s3api"
for b in "$LAKE" "$CKPT" "$LOGS"; do
  expect "$b versioning" "$(awsx s3api get-bucket-versioning --bucket "$b" --query Status)" Enabled
  expect "$b default encryption" "$(awsx s3api get-bucket-encryption --bucket "$b" \
    --query 'ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm')" AES256
  expect "$b public access block" "$(awsx s3api get-public-access-block --bucket "$b" \
    --query 'PublicAccessBlockConfiguration.[BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets]' | xargs)" \
    "True True True True"
  expect "$b object ownership" "$(awsx s3api get-bucket-ownership-controls --bucket "$b" --query 'OwnershipControls.Rules[0].ObjectOwnership')" BucketOwnerEnforced
  awsx s3api get-bucket-policy --bucket "$b" --query Policy > "$WORK/policy-$b.json"
  python3 - "$WORK/policy-$b.json" "$b" <<'PY' || fail "the bucket policy of $b does not deny requests without TLS (above)"
import json, sys
doc, b = json.load(open(sys.argv[1])), sys.argv[2]
s = next(s for s in doc["Statement"] if s.get("Sid") == "DenyInsecureTransport")
assert s["Effect"] == "Deny" and s["Principal"] in ("*", {"AWS": "*"}) and s["Action"] in ("s3:*", ["s3:*"]), s
assert sorted(s["Resource"]) == [f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*"], s["Resource"]
assert s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}, s["Condition"]
print(f"ok  {b} bucket policy: DenyInsecureTransport on {b} and {b}/* when aws:SecureTransport is false")
PY
done
rule="Rules[?ID=='%s'] | [0].[Status, Filter.Prefix || '(whole bucket)', NoncurrentVersionExpiration.NoncurrentDays, Expiration.ExpiredObjectDeleteMarker, AbortIncompleteMultipartUpload.DaysAfterInitiation]"
# shellcheck disable=SC2059
expect "$CKPT lifecycle rule (status, prefix, noncurrent days, expired delete markers, abort uploads after)" \
  "$(awsx s3api get-bucket-lifecycle-configuration --bucket "$CKPT" --query "$(printf "$rule" iot-etl-expire-noncurrent-checkpoint-records)" | xargs)" \
  "Enabled $JOB/ 7 True 1"
# shellcheck disable=SC2059
expect "$LAKE lifecycle rule (status, prefix, noncurrent days, expired delete markers, abort uploads after)" \
  "$(awsx s3api get-bucket-lifecycle-configuration --bucket "$LAKE" --query "$(printf "$rule" iot-etl-expire-noncurrent-table-files)" | xargs)" \
  "Enabled (whole bucket) 30 True 1"
expect "$LOGS lifecycle rule (status, expiration days)" \
  "$(awsx s3api get-bucket-lifecycle-configuration --bucket "$LOGS" --query "Rules[?ID=='iot-etl-expire-access-logs'] | [0].[Status, Expiration.Days]" | xargs)" \
  "Enabled 90"
for b in "$LAKE" "$CKPT"; do
  expect "$b access logs" "$(awsx s3api get-bucket-logging --bucket "$b" --query 'LoggingEnabled.[TargetBucket, TargetPrefix]' | xargs)" "$LOGS $b/"
done

step "moto's CloudFormation creates the stack of deploy/aws/template.yaml"
python3 - "$WORK/stack-parameters.json" <<'PY'
import json, sys
p = {"LakeBucketName": "cfn-lake", "CheckpointBucketName": "cfn-checkpoints", "AccessLogBucketName": "cfn-access-logs",
     "CheckpointPrefix": "etl/prod", "MskBootstrapServers": "b-1.msk.kafka.us-east-1.amazonaws.com:9092,b-2.msk.kafka.us-east-1.amazonaws.com:9092",
     "EksClusterName": "prod", "EksOidcIssuer": "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"}
json.dump([{"ParameterKey": k, "ParameterValue": v} for k, v in p.items()], open(sys.argv[1], "w"))
PY
awsx cloudformation create-stack --stack-name iot-etl --template-body file://deploy/aws/template.yaml \
  --capabilities CAPABILITY_IAM --parameters "file://$WORK/stack-parameters.json" > /dev/null
status=$(awsx cloudformation describe-stacks --stack-name iot-etl --query 'Stacks[0].StackStatus')
expect "stack status" "$status" CREATE_COMPLETE
output() { awsx cloudformation describe-stacks --stack-name iot-etl --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue"; }
expect "output OutputPath (OUTPUT_PATH)" "$(output OutputPath)" s3://cfn-lake/tables
expect "output CheckpointLocation (CHECKPOINT_LOCATION)" "$(output CheckpointLocation)" s3://cfn-checkpoints/etl/prod
expect "output KafkaBrokers (KAFKA_BROKERS)" "$(output KafkaBrokers)" b-1.msk.kafka.us-east-1.amazonaws.com:9092,b-2.msk.kafka.us-east-1.amazonaws.com:9092
expect "output AwsRegion (AWS_REGION)" "$(output AwsRegion)" us-east-1
role=$(output EngineRoleArn)
awsx iam get-role --role-name "${role##*/}" --query Role.AssumeRolePolicyDocument --output json > "$WORK/trust.json"
python3 - "$WORK/trust.json" <<'PY' || fail "the engine role's trust policy is not the service account's (above)"
import json, sys
issuer = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
[s] = json.load(open(sys.argv[1]))["Statement"]
assert s["Effect"] == "Allow" and s["Action"] == "sts:AssumeRoleWithWebIdentity", s
assert s["Principal"] == {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{issuer}"}, s["Principal"]
assert s["Condition"] == {"StringEquals": {f"{issuer}:aud": "sts.amazonaws.com", f"{issuer}:sub": "system:serviceaccount:iot-etl:iot-etl-engine"}}, s["Condition"]
print("ok  role trust: sts:AssumeRoleWithWebIdentity from the cluster's OIDC provider, audience sts, subject system:serviceaccount:iot-etl:iot-etl-engine")
PY
awsx iam get-policy-version --policy-arn "$(output EnginePolicyArn)" --version-id v1 --query PolicyVersion.Document --output json > "$WORK/stack-policy.json"
sed -e 's/LAKE_BUCKET/cfn-lake/g' -e 's/CHECKPOINT_BUCKET/cfn-checkpoints/g' deploy/aws/engine-policy.json > "$WORK/engine-policy-cfn.json"
python3 -c 'import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); sys.exit(a != b)' "$WORK/stack-policy.json" "$WORK/engine-policy-cfn.json" \
  || fail "the template's EnginePolicy differs from deploy/aws/engine-policy.json: $(diff "$WORK/stack-policy.json" "$WORK/engine-policy-cfn.json" | head -20)"
echo "ok  the stack's EnginePolicy is deploy/aws/engine-policy.json for its buckets, statement for statement"

step "an IAM user holding only engine-policy.json; moto enforces IAM from now on"
awsx iam create-user --user-name admin > /dev/null
awsx iam put-user-policy --user-name admin --policy-name everything \
  --policy-document '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
read -r admin_key admin_secret <<< "$(awsx iam create-access-key --user-name admin --query 'AccessKey.[AccessKeyId, SecretAccessKey]')"
policy_arn=$(awsx iam create-policy --policy-name iot-etl-engine --policy-document "file://$WORK/engine-policy.json" --query Policy.Arn)
awsx iam create-user --user-name engine > /dev/null
awsx iam attach-user-policy --user-name engine --policy-arn "$policy_arn"
awsx iam put-user-policy --user-name engine --policy-name moto-delete-objects-quirk --policy-document \
  "{\"Version\": \"2012-10-17\", \"Statement\": [{\"Effect\": \"Allow\", \"Action\": \"s3:DeleteObject\", \"Resource\": [\"arn:aws:s3:::$LAKE\", \"arn:aws:s3:::$CKPT\"]}]}"
read -r engine_key engine_secret <<< "$(awsx iam create-access-key --user-name engine --query 'AccessKey.[AccessKeyId, SecretAccessKey]')"
# moto's conditional-Deny bug (header): with these policies moto would deny every request,
# the engine's and also the admin's, and the denials below would prove nothing about IAM.
for b in "$LAKE" "$CKPT" "$LOGS"; do awsx s3api delete-bucket-policy --bucket "$b"; done
python3 -c "import urllib.request as u; u.urlopen(u.Request('$MOTO_URL/moto-api/reset-auth', data=b'0', method='POST', headers={'Content-Type': 'text/plain'}))"
if awsx s3api list-buckets > /dev/null 2>&1; then fail "moto still accepts an unknown access key: IAM is not enforced"; fi
export AWS_ACCESS_KEY_ID=$admin_key AWS_SECRET_ACCESS_KEY=$admin_secret
as_engine() { AWS_ACCESS_KEY_ID=$engine_key AWS_SECRET_ACCESS_KEY=$engine_secret "$@"; }
denied() { # WHAT COMMAND...: COMMAND, run as the engine user, must be refused with AccessDenied
  local out
  if out=$(as_engine "${@:2}" 2>&1); then fail "the engine user may $1"; fi
  [[ "$out" == *AccessDenied* ]] || fail "$1: expected AccessDenied, got: $out"
  echo "ok  the engine user may not $1"
}
awsx s3api list-objects-v2 --bucket "$LOGS" > /dev/null || fail "the admin user cannot list $LOGS: the denials below would prove nothing"
denied "list the access-log bucket" awsx s3api list-objects-v2 --bucket "$LOGS"
denied "read the access-log bucket" awsx s3api get-object --bucket "$LOGS" --key "$LAKE/x" "$WORK/x"
denied "write outside its buckets" awsx s3api put-object --bucket "$LOGS" --key x --body deploy/aws/README.md
denied "suspend versioning" awsx s3api put-bucket-versioning --bucket "$LAKE" --versioning-configuration Status=Suspended
denied "change the lifecycle rules" awsx s3api delete-bucket-lifecycle --bucket "$CKPT"
denied "read bucket policies" awsx s3api get-bucket-policy --bucket "$LOGS"

DATA=$WORK/data
step "generating $DATA (2 days at 2 events/s) and the expected tables (a local run)"
"$BIN/producer" --out-dir "$DATA" --duration 2d --rate 2 --partitions 3 --seed 11 --start 2025-11-03T00:00:00Z \
  --duplicates 0.02 --late 0.005 --invalid 0.005 --outliers 0.01 --metrics-addr 127.0.0.1:0 2>/dev/null
"$BIN/dataflow" --input "$DATA" --output "$WORK/expected" --bounded -w 2 --metrics-addr 127.0.0.1:0 --progress never > /dev/null

export S3_ENDPOINT=$MOTO_URL
job() { as_engine "$BIN/dataflow" --input "$DATA" --output "s3://$LAKE/tables" --checkpoint "s3://$CKPT/$JOB" \
  --bounded -w 2 --metrics-addr 127.0.0.1:0 --progress never; }
records() { # the keys of the commit records in the checkpoint bucket, one a line
  python3 - "$CKPT" "$JOB/" <<'PY'
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[1], Prefix=sys.argv[2]):
    for o in page.get("Contents", []):
        print(o["Key"])
PY
}

step "the job as the engine user, SIGKILLed after its 2nd commit record, then restarted"
job > "$WORK/run-1.txt" 2> "$WORK/run-1.log" &
pid=$!
deadline=$((SECONDS + 60))
until [ "$(records | grep -c '/commit-')" -ge 2 ]; do
  kill -0 "$pid" 2>/dev/null || fail "the job ended before it had written 2 commit records (see $WORK/run-1.log)"
  [ "$SECONDS" -lt "$deadline" ] || fail "no 2 commit records in s3://$CKPT/$JOB/ within 60 s (see $WORK/run-1.log)"
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null || fail "the job ended before it could be killed: make the input larger"
wait "$pid" 2>/dev/null && fail "the killed job exited 0"
[ ! -s "$WORK/run-1.txt" ] || fail "the killed job had already printed its summary: it was not killed mid-run"
sleep 0.5 # requests the job sent before it died may still be served
before=$(records | grep -c '/commit-')
echo "killed with $before commit records in s3://$CKPT/$JOB/"
job > "$WORK/run-2.txt" 2> "$WORK/run-2.log" || fail "the restarted job failed (see $WORK/run-2.log)"
resumed=$(sed -n '/resuming from the checkpoint/ s/.*last_epoch=\(Some(\)\{0,1\}\([0-9]*\).*/\2/p' "$WORK/run-2.log")
[ -n "$resumed" ] || fail "the restart did not resume from the checkpoint (no 'resuming from the checkpoint' in $WORK/run-2.log)"
[ "$resumed" -ge "$before" ] || fail "the restart resumed from epoch $resumed, below the $before records seen before the kill"
echo "the restart resumed from epoch $resumed; $(tail -2 "$WORK/run-2.txt" | head -1 | xargs)"

step "analytics, as the engine user, against the local run"
as_engine "$BIN/analytics" check --output "s3://$LAKE/tables" > "$WORK/check.txt" || fail "analytics check --output s3://$LAKE/tables (see $WORK/check.txt)"
as_engine "$BIN/analytics" diff "$WORK/expected" "s3://$LAKE/tables" || fail "analytics diff: s3://$LAKE/tables differs from the local run"
echo "ok  analytics check passes and analytics diff finds nothing"

step "where the engine's objects are"
python3 - "$LAKE" "$CKPT" "$LOGS" "$JOB" <<'PY' || fail "objects in the wrong place (above)"
import os, re, sys, boto3
lake, ckpt, logs, job = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1")
def keys(bucket):
    return [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in p.get("Contents", [])]
rules = s3.get_bucket_lifecycle_configuration(Bucket=ckpt)["Rules"]
rule = next(r for r in rules if r["ID"] == "iot-etl-expire-noncurrent-checkpoint-records")["Filter"]["Prefix"]
lake_keys, ckpt_keys = keys(lake), keys(ckpt)
table = re.compile(r"^tables/(events|windows|daily_p95|late|rejected)/year=\d{4}/month=\d\d/day=\d\d/(hour=\d\d/)?part-[c0-9]+\.parquet$")
record = re.compile(rf"^{re.escape(job)}/(commit|base)-\d{{10}}\.json$")
bad = [k for k in lake_keys if not table.match(k)] + [k for k in ckpt_keys if not record.match(k)]
assert not bad, f"unexpected objects (a pending file, a record in the lake, a table in the checkpoint bucket...): {bad[:5]}"
assert not [k for k in ckpt_keys if not k.startswith(rule)], f"records outside the lifecycle rule's prefix {rule!r}"
epochs = sorted(int(k[-15:-5]) for k in ckpt_keys if "/commit-" in k)
assert epochs == list(range(1, len(epochs) + 1)), f"commit records not numbered 1..n: {epochs[:5]}..."
logs_keys = keys(logs)  # moto writes an access log for each bucket-level request (a listing)
assert not [k for k in logs_keys if not k.startswith((lake + "/", ckpt + "/"))], f"objects in the log bucket that are no access logs: {logs_keys[:5]}"
assert [k for k in logs_keys if k.startswith(lake + "/")] and [k for k in logs_keys if k.startswith(ckpt + "/")], "no access log of one of the buckets"
versions = s3.list_object_versions(Bucket=lake)
noncurrent = sum(1 for v in versions.get("Versions", []) if not v["IsLatest"])
print(f"ok  {len(lake_keys)} table files under s3://{lake}/tables/, nothing else; {len(ckpt_keys)} records "
      f"(epochs 1..{len(epochs)}) under s3://{ckpt}/{job}/, all under the lifecycle rule's prefix {rule!r}, nothing else")
print(f"    {len(logs_keys)} access logs (moto's) under s3://{logs}/{lake}/ and s3://{logs}/{ckpt}/, nothing else")
print(f"    the lake keeps {noncurrent} noncurrent versions and {len(versions.get('DeleteMarkers', []))} delete markers "
      f"(the published pending files): its lifecycle rule expires them")
PY

echo "PASS: deploy/aws on moto: lints clean, setup.sh idempotent, stack outputs and policy, engine as its IAM user killed and restarted, exact tables ($(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s)"
