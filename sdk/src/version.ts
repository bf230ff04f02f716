/** This SDK's version (package.json's; a test keeps them equal). Sent as `X-Votestream-Client: votestream-sdk/<version>`. */
export const sdkVersion = '0.1.0';

/** The `X-Votestream-Client` value: how ingest, its logs and the edge's bot rules (WAF scope-down) know the SDK. */
export const sdkClientHeader = `votestream-sdk/${sdkVersion}`;
