#!/usr/bin/env bash
# Creates (or brings into line) the S3 buckets the engine needs on AWS, with the AWS CLI:
#
#   deploy/aws/setup.sh --lake-bucket NAME --checkpoint-bucket NAME [options]
#
#   --lake-bucket NAME        the data lake: tables under s3://NAME/TABLES_PREFIX   [LAKE_BUCKET]
#   --checkpoint-bucket NAME  the commit records, s3://NAME/CHECKPOINT_PREFIX    [CHECKPOINT_BUCKET]
#   --tables-prefix P         folder of the tables in the lake (default tables)      [TABLES_PREFIX]
#   --checkpoint-prefix P     folder of the records (default iot-etl)            [CHECKPOINT_PREFIX]
#   --log-bucket NAME         also create NAME and send both buckets' S3 server access logs
#                             there (optional; the CloudFormation template always does)  [LOG_BUCKET]
#   --region R                (default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1)
#   --endpoint-url URL        an S3-compatible emulator instead of AWS (tests/e2e/aws.sh: moto)
#   --checkpoint-noncurrent-days N  keep overwritten/deleted commit records N days (default 7)
#   --lake-noncurrent-days N  keep overwritten/deleted table files N days (default 30)
#   --log-retention-days N    keep access logs N days (default 90)
#   --policy-out FILE         write deploy/aws/engine-policy.json for these buckets to FILE
#
# Every bucket gets: versioning; default encryption SSE-S3 (AES-256, see README.md here: an
# existing SSE-KMS default is kept, never downgraded); the public-access block with all four
# flags; object ownership "bucket owner enforced" (ACLs off); a bucket policy that denies
# requests without TLS; lifecycle rules (below). Each setting is read first and written only
# when it differs, so a second run prints "unchanged" everywhere, reports "0 changes" and
# succeeds. Lifecycle rules and policy statements of other IDs/Sids are kept.
#
# Lifecycle: the engine writes its commit records (commit-<epoch>.json, base-<epoch>.json)
# directly under CHECKPOINT_LOCATION = s3://CHECKPOINT_BUCKET/CHECKPOINT_PREFIX/ (no
# `_checkpoint/` folder: that is only the default inside OUTPUT_PATH when no checkpoint
# location is set; see connectors/src/sink/commit.rs), so the checkpoint bucket's rule
# expires noncurrent versions under CHECKPOINT_PREFIX/. The lake's rule expires noncurrent
# versions in the whole bucket: every table file is written under a pending name, copied to
# its final name and the pending one deleted, so without it versioning would keep a second
# copy of every file forever. Both rules also remove expired delete markers and abort
# multipart uploads left incomplete for a day (an engine killed mid-upload).
#
# Needs the AWS CLI (v1 or v2) and python3 (JSON merging); credentials as for any aws command.
# Prints the OUTPUT_PATH, CHECKPOINT_LOCATION and AWS_REGION to give the engine at the end.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "setup.sh: $*" >&2; exit 1; }

LAKE_BUCKET=${LAKE_BUCKET:-}
CHECKPOINT_BUCKET=${CHECKPOINT_BUCKET:-}
TABLES_PREFIX=${TABLES_PREFIX:-tables}
CHECKPOINT_PREFIX=${CHECKPOINT_PREFIX:-iot-etl}
LOG_BUCKET=${LOG_BUCKET:-}
REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
ENDPOINT=""
CHECKPOINT_DAYS=7 LAKE_DAYS=30 LOG_DAYS=90
POLICY_OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --lake-bucket) LAKE_BUCKET=${2:?}; shift 2 ;;
    --checkpoint-bucket) CHECKPOINT_BUCKET=${2:?}; shift 2 ;;
    --tables-prefix) TABLES_PREFIX=${2:?}; shift 2 ;;
    --checkpoint-prefix) CHECKPOINT_PREFIX=${2:?}; shift 2 ;;
    --log-bucket) LOG_BUCKET=${2:?}; shift 2 ;;
    --region) REGION=${2:?}; shift 2 ;;
    --endpoint-url) ENDPOINT=${2:?}; shift 2 ;;
    --checkpoint-noncurrent-days) CHECKPOINT_DAYS=${2:?}; shift 2 ;;
    --lake-noncurrent-days) LAKE_DAYS=${2:?}; shift 2 ;;
    --log-retention-days) LOG_DAYS=${2:?}; shift 2 ;;
    --policy-out) POLICY_OUT=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[ -n "$LAKE_BUCKET" ] || die "--lake-bucket (or LAKE_BUCKET) is required"
[ -n "$CHECKPOINT_BUCKET" ] || die "--checkpoint-bucket (or CHECKPOINT_BUCKET) is required"
[ "$LAKE_BUCKET" != "$CHECKPOINT_BUCKET" ] || die "the lake and checkpoint buckets must differ"
for p in "$TABLES_PREFIX" "$CHECKPOINT_PREFIX"; do
  [[ "$p" =~ ^[A-Za-z0-9._=-]+(/[A-Za-z0-9._=-]+)*$ ]] || die "prefix '$p': use one or more folder names separated by /, without leading or trailing /"
done
for n in "$CHECKPOINT_DAYS" "$LAKE_DAYS" "$LOG_DAYS"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "days must be a positive integer, got '$n'"
done
command -v aws >/dev/null 2>&1 || die "the AWS CLI (aws) is required: pip install awscli, or AWS CLI v2"
command -v python3 >/dev/null 2>&1 || die "python3 is required (to merge lifecycle rules and policy statements)"

awsc() { aws --region "$REGION" ${ENDPOINT:+--endpoint-url "$ENDPOINT"} --output json "$@"; }
CHANGES=0
say() { echo "   $*"; }
changed() { CHANGES=$((CHANGES + 1)); say "$1: $2 (set)"; }

identity=$(awsc sts get-caller-identity --query '[Account, Arn]' --output text 2>&1) \
  || die "cannot identify the caller (aws sts get-caller-identity): $identity; check the credentials and --endpoint-url"
ACCOUNT=${identity%%[[:space:]]*}
ARN=${identity##*[[:space:]]}
PARTITION=$(cut -d: -f2 <<< "$ARN")
echo "setup.sh: account $ACCOUNT, region $REGION${ENDPOINT:+, endpoint $ENDPOINT}"

# Prints "unchanged" when every item of DESIRED (a JSON list) is in the document CURRENT under
# KEY with the same ID_FIELD and at least the desired fields; else the document with those
# items replaced or added (items of other IDs kept).
merge_doc() { # KEY ID_FIELD CURRENT_JSON DESIRED_ITEMS_JSON
  python3 - "$@" <<'PY'
import json, sys
key, id_field, current, desired = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
doc = json.loads(current) if current.strip() else {}
items = doc.get(key, [])
items = [items] if isinstance(items, dict) else list(items)

def norm(v):  # a one-element list and its element are the same thing in AWS documents
    if isinstance(v, list):
        v = [norm(x) for x in v]
        return v[0] if len(v) == 1 else sorted(v, key=lambda x: json.dumps(x, sort_keys=True))
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    return v

def covers(have, want):
    if isinstance(want, dict):
        return isinstance(have, dict) and all(covers(have.get(k), v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(have) == len(want) and all(covers(h, w) for h, w in zip(have, want))
    return have == want

by_id = {i.get(id_field): i for i in items}
if all(w[id_field] in by_id and covers(norm(by_id[w[id_field]]), norm(w)) for w in desired):
    print("unchanged")
else:
    ours = {w[id_field] for w in desired}
    doc[key] = [i for i in items if i.get(id_field) not in ours] + desired
    print(json.dumps(doc))
PY
}

ensure_bucket() { # NAME
  local out
  if out=$(awsc s3api head-bucket --bucket "$1" 2>&1); then
    local where
    where=$(python3 -c 'import json,sys; print((json.loads(sys.argv[1] or "{}")).get("BucketRegion", ""))' "$out" 2>/dev/null || true)
    [ -z "$where" ] || [ "$where" = "$REGION" ] || die "bucket $1 exists in $where, not in $REGION: pass --region $where or another name"
    say "bucket: exists (unchanged)"
    return
  fi
  case "$out" in
    *403*|*Forbidden*) die "bucket $1 exists but this account cannot use it (owned by another account, or no s3:ListBucket): choose another name" ;;
    *404*|*"Not Found"*|*NoSuchBucket*) ;;
    *) die "cannot look up bucket $1: $out" ;;
  esac
  local create=(s3api create-bucket --bucket "$1")
  [ "$REGION" = us-east-1 ] || create+=(--create-bucket-configuration "LocationConstraint=$REGION")
  if out=$(awsc "${create[@]}" 2>&1); then
    changed bucket "created"
  elif [[ "$out" == *BucketAlreadyOwnedByYou* ]]; then
    say "bucket: exists (unchanged)" # created meanwhile by another run
  elif [[ "$out" == *BucketAlreadyExists* ]]; then
    die "bucket name $1 is taken by another account (names are global): choose another"
  else
    die "cannot create bucket $1: $out"
  fi
}

ensure_ownership() { # NAME
  local now
  now=$(awsc s3api get-bucket-ownership-controls --bucket "$1" --query 'OwnershipControls.Rules[0].ObjectOwnership' --output text 2>/dev/null || echo none)
  if [ "$now" = BucketOwnerEnforced ]; then say "object ownership: BucketOwnerEnforced, ACLs off (unchanged)"; return; fi
  awsc s3api put-bucket-ownership-controls --bucket "$1" --ownership-controls 'Rules=[{ObjectOwnership=BucketOwnerEnforced}]'
  changed "object ownership" "BucketOwnerEnforced, ACLs off (was $now)"
}

ensure_public_access_block() { # NAME
  local now
  now=$(awsc s3api get-public-access-block --bucket "$1" --output text \
    --query 'PublicAccessBlockConfiguration.[BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets]' 2>/dev/null | xargs || true)
  if [ "$now" = "True True True True" ]; then say "public access block: all four flags on (unchanged)"; return; fi
  awsc s3api put-public-access-block --bucket "$1" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
  changed "public access block" "all four flags on (was ${now:-none})"
}

ensure_versioning() { # NAME
  local now
  now=$(awsc s3api get-bucket-versioning --bucket "$1" --query Status --output text)
  if [ "$now" = Enabled ]; then say "versioning: Enabled (unchanged)"; return; fi
  awsc s3api put-bucket-versioning --bucket "$1" --versioning-configuration Status=Enabled
  changed versioning "Enabled (was $now)"
}

ensure_encryption() { # NAME
  local now
  now=$(awsc s3api get-bucket-encryption --bucket "$1" --output text \
    --query 'ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm' 2>/dev/null || echo none)
  case "$now" in
    AES256) say "default encryption: SSE-S3 AES256 (unchanged)" ;;
    aws:kms*) say "default encryption: $now kept (stronger than SSE-S3; the engine's role then also needs kms:GenerateDataKey and kms:Decrypt on the key)" ;;
    *)
      awsc s3api put-bucket-encryption --bucket "$1" --server-side-encryption-configuration \
        '{"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}'
      changed "default encryption" "SSE-S3 AES256 (was $now)" ;;
  esac
}

ensure_lifecycle() { # NAME RULE_JSON DESCRIPTION
  local now merged id
  now=$(awsc s3api get-bucket-lifecycle-configuration --bucket "$1" 2>/dev/null || true)
  id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["ID"])' "$2")
  merged=$(merge_doc Rules ID "$now" "[$2]")
  if [ "$merged" = unchanged ]; then say "lifecycle rule $id: $3 (unchanged)"; return; fi
  awsc s3api put-bucket-lifecycle-configuration --bucket "$1" --lifecycle-configuration "$merged"
  changed "lifecycle rule $id" "$3"
}

ensure_logging() { # NAME
  local now
  now=$(awsc s3api get-bucket-logging --bucket "$1" --query 'LoggingEnabled.[TargetBucket, TargetPrefix]' --output text)
  if [ "$now" = "$LOG_BUCKET	$1/" ]; then say "access logs: s3://$LOG_BUCKET/$1/ (unchanged)"; return; fi
  awsc s3api put-bucket-logging --bucket "$1" \
    --bucket-logging-status "{\"LoggingEnabled\": {\"TargetBucket\": \"$LOG_BUCKET\", \"TargetPrefix\": \"$1/\"}}"
  changed "access logs" "s3://$LOG_BUCKET/$1/"
}

ensure_policy() { # NAME STATEMENTS_JSON (a list)
  local now merged
  now=$(awsc s3api get-bucket-policy --bucket "$1" --query Policy --output text 2>/dev/null || true)
  merged=$(merge_doc Statement Sid "$now" "$2")
  [ "$merged" = unchanged ] && { say "bucket policy: $(python3 -c 'import json,sys; print(", ".join(s["Sid"] for s in json.loads(sys.argv[1])))' "$2") (unchanged)"; return; }
  merged=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.setdefault("Version", "2012-10-17"); print(json.dumps(d))' "$merged")
  awsc s3api put-bucket-policy --bucket "$1" --policy "$merged"
  changed "bucket policy" "$(python3 -c 'import json,sys; print(", ".join(s["Sid"] for s in json.loads(sys.argv[1])))' "$2")"
}

tls_only() { # NAME: the statement denying every request without TLS
  printf '{"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*", "Resource": ["arn:%s:s3:::%s", "arn:%s:s3:::%s/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}' \
    "$PARTITION" "$1" "$PARTITION" "$1"
}

# A lifecycle rule expiring versions DAYS days after they became noncurrent (overwritten or
# deleted), then their delete markers, under PREFIX (empty: the whole bucket).
noncurrent_rule() { # ID PREFIX DAYS
  local filter='{}'
  [ -z "$2" ] || filter="{\"Prefix\": \"$2\"}"
  printf '{"ID": "%s", "Status": "Enabled", "Filter": %s, "NoncurrentVersionExpiration": {"NoncurrentDays": %d}, "Expiration": {"ExpiredObjectDeleteMarker": true}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}' "$1" "$filter" "$3"
}

harden() { # NAME: everything every bucket gets, in an order that never leaves a bucket open
  ensure_bucket "$1"
  ensure_ownership "$1"
  ensure_public_access_block "$1"
  ensure_versioning "$1"
  ensure_encryption "$1"
}

if [ -n "$LOG_BUCKET" ]; then
  echo "== log bucket $LOG_BUCKET: S3 server access logs of the two buckets"
  harden "$LOG_BUCKET"
  ensure_lifecycle "$LOG_BUCKET" "{\"ID\": \"iot-etl-expire-access-logs\", \"Status\": \"Enabled\", \"Filter\": {}, \"Expiration\": {\"Days\": $LOG_DAYS}, \"NoncurrentVersionExpiration\": {\"NoncurrentDays\": 1}, \"AbortIncompleteMultipartUpload\": {\"DaysAfterInitiation\": 1}}" \
    "logs expire after $LOG_DAYS days"
  # One statement per source bucket, each writing under its own prefix only.
  log_from() { # SID SOURCE_BUCKET
    printf '{"Sid": "%s", "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject", "Resource": "arn:%s:s3:::%s/%s/*", "Condition": {"StringEquals": {"aws:SourceAccount": "%s"}, "ArnLike": {"aws:SourceArn": "arn:%s:s3:::%s"}}}' \
      "$1" "$PARTITION" "$LOG_BUCKET" "$2" "$ACCOUNT" "$PARTITION" "$2"
  }
  ensure_policy "$LOG_BUCKET" "[$(log_from AccessLogsFromLake "$LAKE_BUCKET"), $(log_from AccessLogsFromCheckpoint "$CHECKPOINT_BUCKET"), $(tls_only "$LOG_BUCKET")]"
fi

echo "== lake bucket $LAKE_BUCKET: tables under s3://$LAKE_BUCKET/$TABLES_PREFIX"
harden "$LAKE_BUCKET"
ensure_lifecycle "$LAKE_BUCKET" "$(noncurrent_rule iot-etl-expire-noncurrent-table-files "" "$LAKE_DAYS")" \
  "noncurrent versions in the whole bucket expire after $LAKE_DAYS days"
[ -z "$LOG_BUCKET" ] || ensure_logging "$LAKE_BUCKET"
ensure_policy "$LAKE_BUCKET" "[$(tls_only "$LAKE_BUCKET")]"

echo "== checkpoint bucket $CHECKPOINT_BUCKET: commit records under s3://$CHECKPOINT_BUCKET/$CHECKPOINT_PREFIX/"
harden "$CHECKPOINT_BUCKET"
ensure_lifecycle "$CHECKPOINT_BUCKET" "$(noncurrent_rule iot-etl-expire-noncurrent-checkpoint-records "$CHECKPOINT_PREFIX/" "$CHECKPOINT_DAYS")" \
  "noncurrent versions under $CHECKPOINT_PREFIX/ expire after $CHECKPOINT_DAYS days"
[ -z "$LOG_BUCKET" ] || ensure_logging "$CHECKPOINT_BUCKET"
ensure_policy "$CHECKPOINT_BUCKET" "[$(tls_only "$CHECKPOINT_BUCKET")]"

if [ -n "$POLICY_OUT" ]; then
  sed -e "s/arn:aws:/arn:$PARTITION:/g" -e "s/LAKE_BUCKET/$LAKE_BUCKET/g" -e "s/CHECKPOINT_BUCKET/$CHECKPOINT_BUCKET/g" \
    "$(dirname "$0")/engine-policy.json" > "$POLICY_OUT"
  echo "== engine policy for these buckets written to $POLICY_OUT (aws iam create-policy --policy-name iot-etl-engine --policy-document file://$POLICY_OUT)"
fi

echo "setup.sh: $CHANGES changes"
echo "Give the engine:"
echo "  OUTPUT_PATH=s3://$LAKE_BUCKET/$TABLES_PREFIX"
echo "  CHECKPOINT_LOCATION=s3://$CHECKPOINT_BUCKET/$CHECKPOINT_PREFIX"
echo "  AWS_REGION=$REGION"
