"""The mobile web page's deployed side (issue 18): a private S3 bucket behind CloudFront, which
also sends the API's paths to the API's stage, so the page calls the API on its own origin
(no CORS, no API URL baked into the page).

    https://<distribution>/app/        the page: web/ uploaded under `app/` (infra/publish_web.py)
    https://<distribution>/v1/...      the API's stage (and /health, /openapi.json), never cached

Only the distribution reads the bucket, through an Origin Access Control (SigV4-signed
requests; the bucket policy admits the CloudFront service principal for this distribution's
ARN alone). `/app/` is served as `app/index.html` by a CloudFront Function on the viewer
request: `DefaultRootObject` applies to `/` only, and an S3 REST origin has no index
documents (the static website endpoint, which has, cannot be reached through an OAC).

What checkov asks for here and the stack does not do is answered in `infra/hardening.py`
(WEB_SKIPS)."""
from __future__ import annotations

from typing import Any

from infra import hardening

KEY_PREFIX = "app/"  # every key of the page; the page's path on the distribution is /app/
# The stack's outputs infra/publish_web.py reads.
OUTPUT_URL, OUTPUT_BUCKET, OUTPUT_DISTRIBUTION = "WebAppURL", "WebBucketName", "WebDistributionId"
API_PATHS = ("/v1/*", "/health", "/openapi.json")

# CloudFront's managed policies (ids are the same in every account).
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
# Every viewer header, cookie and query string but Host (API Gateway routes on its own host
# name). With caching disabled it forwards Authorization too, which an origin request policy
# of one's own may not (CloudFront would have to put it in a cache key); Idempotency-Key and
# Accept-Language reach the API the same way.
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"

# The page has no inline script or style and calls no other origin; images may be data: URLs.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; "
                           "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")

# `/` and `/app` go to the page; a path ending in `/` is that folder's index.html.
INDEX_FUNCTION = """\
function handler(event) {
  var request = event.request;
  var uri = request.uri;
  if (uri === '/' || uri === '/app') {
    return {statusCode: 302, statusDescription: 'Found', headers: {location: {value: '/app/'}}};
  }
  if (uri.endsWith('/')) {
    request.uri = uri + 'index.html';
  }
  return request;
}
"""


# The API behaviours: the viewer's own address in X-Viewer-Address, replacing any the client
# sent, because API Gateway sees only this distribution's edge servers (a per-address limit
# would be shared by everyone behind one edge). The API trusts the header only beside
# X-Origin-Verify, which the origin adds from the `origin` secret (chalicelib/auth/routes.py).
VIEWER_ADDRESS_FUNCTION = """\
function handler(event) {
  var request = event.request;
  request.headers['x-viewer-address'] = {value: event.viewer.ip};
  return request;
}
"""
ORIGIN_HEADER = "X-Origin-Verify"


def api_stage_name(stage: str) -> str:
    """The API Gateway stage chalice deploys the stage's API to (`api` unless configured)."""
    from infra.stage import chalice_config
    return chalice_config()["stages"][stage].get("api_gateway_stage", "api")


def _api_behaviour(path: str) -> dict[str, Any]:
    return {"PathPattern": path, "TargetOriginId": "api", "ViewerProtocolPolicy": "redirect-to-https",
            "AllowedMethods": ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"],
            "CachedMethods": ["GET", "HEAD"],
            "CachePolicyId": CACHING_DISABLED, "OriginRequestPolicyId": ALL_VIEWER_EXCEPT_HOST_HEADER,
            "ResponseHeadersPolicyId": {"Ref": "WebSecurityHeaders"},
            "FunctionAssociations": [{"EventType": "viewer-request", "FunctionARN": {
                "Fn::GetAtt": ["WebViewerAddressFunction", "FunctionMetadata.FunctionARN"]}}]}


def resources(stage: str, prefix: str) -> dict[str, Any]:
    """The bucket, its policy, the OAC, the index function, the security headers and the
    distribution, to merge into the template's Resources."""
    return {
        "WebBucket": {
            "Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Metadata": hardening._skip(*hardening.WEB_SKIPS["bucket"]),
            # a publish replaces every file: earlier versions are kept a month for a rollback
            "Properties": hardening.private_bucket(LifecycleConfiguration={"Rules": [{
                "Id": "OldVersions", "Status": "Enabled",
                "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})},
        "WebBucketPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {
            "Bucket": {"Ref": "WebBucket"},
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                hardening.tls_only("WebBucket"),
                {"Sid": "TheDistributionReadsThePage", "Effect": "Allow",
                 "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject",
                 "Resource": {"Fn::Sub": "${WebBucket.Arn}/" + KEY_PREFIX + "*"},
                 "Condition": {"StringEquals": {"AWS:SourceArn": {"Fn::Sub": (
                     "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${WebDistribution}")}}}}]}}},
        "WebOriginAccessControl": {"Type": "AWS::CloudFront::OriginAccessControl", "Properties": {
            "OriginAccessControlConfig": {
                "Name": f"{prefix}-web", "Description": f"{prefix}: CloudFront reads the web page's bucket",
                "OriginAccessControlOriginType": "s3", "SigningBehavior": "always",
                "SigningProtocol": "sigv4"}}},
        "WebIndexFunction": {"Type": "AWS::CloudFront::Function", "Properties": {
            "Name": f"{prefix}-web-index", "AutoPublish": True, "FunctionCode": INDEX_FUNCTION,
            "FunctionConfig": {"Comment": "/ and /app to /app/; a folder to its index.html",
                               "Runtime": "cloudfront-js-2.0"}}},
        "WebViewerAddressFunction": {"Type": "AWS::CloudFront::Function", "Properties": {
            "Name": f"{prefix}-web-viewer-address", "AutoPublish": True,
            "FunctionCode": VIEWER_ADDRESS_FUNCTION,
            "FunctionConfig": {"Comment": "the viewer's address for the API's per-address limits",
                               "Runtime": "cloudfront-js-2.0"}}},
        "WebSecurityHeaders": {"Type": "AWS::CloudFront::ResponseHeadersPolicy", "Properties": {
            "ResponseHeadersPolicyConfig": {
                "Name": f"{prefix}-web-security-headers",
                "Comment": "HSTS, nosniff, no framing, same-origin CSP, no referrer to other origins",
                "SecurityHeadersConfig": {
                    "StrictTransportSecurity": {"AccessControlMaxAgeSec": 63072000, "IncludeSubdomains": True,
                                                "Override": True},
                    "ContentTypeOptions": {"Override": True},
                    "FrameOptions": {"FrameOption": "DENY", "Override": True},
                    "ReferrerPolicy": {"ReferrerPolicy": "same-origin", "Override": True},
                    "ContentSecurityPolicy": {"ContentSecurityPolicy": CONTENT_SECURITY_POLICY,
                                              "Override": True}}}}},
        "WebDistribution": {
            "Type": "AWS::CloudFront::Distribution",
            "Metadata": hardening._skip(*hardening.WEB_SKIPS["distribution"]),
            "Properties": {"DistributionConfig": {
                "Comment": f"{prefix}: the web page (/app/) and the API on one origin",
                "Enabled": True, "HttpVersion": "http2and3", "IPV6Enabled": True,
                "Origins": [
                    {"Id": "web", "DomainName": {"Fn::GetAtt": ["WebBucket", "RegionalDomainName"]},
                     "S3OriginConfig": {"OriginAccessIdentity": ""},  # empty: the OAC signs instead
                     "OriginAccessControlId": {"Fn::GetAtt": ["WebOriginAccessControl", "Id"]}},
                    {"Id": "api",
                     "DomainName": {"Fn::Sub": "${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}"},
                     "OriginPath": "/" + api_stage_name(stage),
                     "CustomOriginConfig": {"OriginProtocolPolicy": "https-only", "HTTPSPort": 443,
                                            "OriginSSLProtocols": ["TLSv1.2"]},
                     # resolved by CloudFormation at deploy time: the value is never in the template
                     "OriginCustomHeaders": [{"HeaderName": ORIGIN_HEADER, "HeaderValue": {"Fn::Sub": (
                         "{{resolve:secretsmanager:${OriginSecret}:SecretString:key}}")}}]}],
                "DefaultCacheBehavior": {
                    "TargetOriginId": "web", "ViewerProtocolPolicy": "redirect-to-https",
                    "AllowedMethods": ["GET", "HEAD"], "CachedMethods": ["GET", "HEAD"], "Compress": True,
                    # the object's own Cache-Control (set by publish_web) within the policy's bounds
                    "CachePolicyId": CACHING_OPTIMIZED,
                    "ResponseHeadersPolicyId": {"Ref": "WebSecurityHeaders"},
                    "FunctionAssociations": [{"EventType": "viewer-request", "FunctionARN": {
                        "Fn::GetAtt": ["WebIndexFunction", "FunctionMetadata.FunctionARN"]}}]},
                "CacheBehaviors": [_api_behaviour(path) for path in API_PATHS],
                # No CustomErrorResponses: they apply to every origin and would replace the API's
                # own 403 and 404 bodies.
                # The *.cloudfront.net certificate: CloudFront then negotiates with the TLSv1
                # security policy whatever MinimumProtocolVersion says (browsers still get TLS
                # 1.2 or 1.3). A custom domain (Aliases) with an ACM certificate in us-east-1
                # allows MinimumProtocolVersion TLSv1.2_2021 and SslSupportMethod sni-only.
                "ViewerCertificate": {"CloudFrontDefaultCertificate": True}}}},
    }


def outputs() -> dict[str, Any]:
    return {
        OUTPUT_URL: {"Description": "The mobile web page",
                     "Value": {"Fn::Sub": "https://${WebDistribution.DomainName}/app/"}},
        OUTPUT_BUCKET: {"Description": "Where `make publish-web` uploads web/ (under app/)",
                        "Value": {"Ref": "WebBucket"}},
        OUTPUT_DISTRIBUTION: {"Description": "The distribution `make publish-web` invalidates",
                              "Value": {"Ref": "WebDistribution"}},
    }
