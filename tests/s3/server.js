// The test suite's S3 server: s3rver on 127.0.0.1, a free port, files in the given folder.
// Prints the port once it listens; stops on SIGTERM or when its standard input closes (so it
// never outlives a test run that was killed).
//
//   node tests/s3/server.js DIRECTORY
//
// s3rver 3.7.1 checks the expiry of SigV4 presigned URLs but not their signature (it verifies
// only SigV2), and it serves anonymous reads. A real bucket does neither, and the studio signs
// with SigV4 and relies on a private bucket, so this launcher puts one check in front of
// s3rver: every request must carry a valid SigV4 signature (header or presigned query) made
// with s3rver's key pair. s3rver itself still does everything else, expiry checks included.

const crypto = require('crypto');
const S3rver = require('s3rver');
const S3Error = require('s3rver/lib/models/error');

const SECRETS = { S3RVER: 'S3RVER' }; // s3rver's one account

const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
const sha256 = data => crypto.createHash('sha256').update(data).digest('hex');
const encode = text =>
  encodeURIComponent(text).replace(/[!'()*]/g, c => '%' + c.charCodeAt(0).toString(16).toUpperCase());

function canonicalPath(rawPath) {
  return rawPath.split('/').map(part => encode(decodeURIComponent(part))).join('/');
}

function canonicalQuery(rawQuery, leaveOut) {
  return rawQuery
    .split('&')
    .filter(Boolean)
    .map(pair => {
      const [name, ...value] = pair.split('=');
      return [encode(decodeURIComponent(name)), encode(decodeURIComponent(value.join('=')))];
    })
    .filter(([name]) => name !== leaveOut)
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}

// What a request's signature must be, or null when its credential names no key we know.
function expectedSignature(ctx, { credential, signedHeaders, amzDate, payloadHash, leaveOut }) {
  const [accessKey, ...scope] = credential.split('/');
  const secret = SECRETS[accessKey];
  if (!secret || scope.length !== 4) return null;
  const [rawPath, rawQuery = ''] = ctx.originalUrl.split('?');
  const headers = signedHeaders
    .split(';')
    .map(name => `${name}:${(ctx.get(name) || '').trim().replace(/ +/g, ' ')}\n`)
    .join('');
  const request = [
    ctx.method,
    canonicalPath(rawPath),
    canonicalQuery(rawQuery, leaveOut),
    headers,
    signedHeaders,
    payloadHash,
  ].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope.join('/'), sha256(request)].join('\n');
  const key = scope.reduce((k, part) => hmac(k, part), 'AWS4' + secret);
  return hmac(key, toSign).toString('hex');
}

function signatureOf(ctx) {
  if (ctx.query['X-Amz-Algorithm']) {
    return {
      given: ctx.query['X-Amz-Signature'] || '',
      expected: expectedSignature(ctx, {
        credential: ctx.query['X-Amz-Credential'] || '',
        signedHeaders: ctx.query['X-Amz-SignedHeaders'] || '',
        amzDate: ctx.query['X-Amz-Date'] || '',
        payloadHash: 'UNSIGNED-PAYLOAD',
        leaveOut: 'X-Amz-Signature',
      }),
    };
  }
  const auth = ctx.get('Authorization');
  if (auth.startsWith('AWS4-HMAC-SHA256 ')) {
    const parts = Object.fromEntries(
      auth.slice(17).split(',').map(part => part.trim().split('=')),
    );
    return {
      given: parts.Signature || '',
      expected: expectedSignature(ctx, {
        credential: parts.Credential || '',
        signedHeaders: parts.SignedHeaders || '',
        amzDate: ctx.get('x-amz-date'),
        payloadHash: ctx.get('x-amz-content-sha256'),
        leaveOut: null,
      }),
    };
  }
  return null;
}

async function requireSigV4(ctx, next) {
  const signature = signatureOf(ctx);
  if (!signature) {
    throw new S3Error('AccessDenied', 'Access Denied: this test server takes SigV4-signed requests only.');
  }
  if (signature.expected === null) {
    throw new S3Error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
  }
  if (signature.given !== signature.expected) {
    throw new S3Error(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided.',
    );
  }
  return next();
}

const directory = process.argv[2];
if (!directory) {
  console.error('usage: node tests/s3/server.js DIRECTORY');
  process.exit(2);
}
const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true });
server.middleware.splice(1, 0, requireSigV4); // after s3rver's logger, before everything else
server.run().then(
  ({ port }) => console.log(port),
  error => {
    console.error(error);
    process.exit(1);
  },
);
process.on('SIGTERM', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
