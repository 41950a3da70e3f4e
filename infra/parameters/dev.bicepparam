// Development / evaluation: Flex Consumption, public endpoints (identity auth only), no edge
// services. Roughly the cheapest secured shape; see docs/deploy.md "What it costs".
//
// Values that differ per tenant come from the environment, so this file needs no edits:
//   BIFROST_EASYAUTH_CLIENT_ID, BIFROST_EASYAUTH_CLIENT_SECRET (docs/deploy.md, step 3),
//   BIFROST_DEPLOYER_PRINCIPAL_ID (optional, the CI service principal's object id).
using '../main.bicep'

param namePrefix = 'bifrostdev'
param easyAuthClientId = readEnvironmentVariable('BIFROST_EASYAUTH_CLIENT_ID')
param easyAuthClientSecret = readEnvironmentVariable('BIFROST_EASYAUTH_CLIENT_SECRET', '')
param deployerPrincipalId = readEnvironmentVariable('BIFROST_DEPLOYER_PRINCIPAL_ID', '')

param hostingPlanSku = 'FC1'
param flexMaximumInstanceCount = 10
param flexInstanceMemoryMB = 2048
param storageSku = 'Standard_LRS'
param keyVaultPublicNetworkAccess = 'Enabled'
param enablePrivateNetworking = false
param enableFrontDoor = false
param enableStaticWebApp = false
param allowedIpRanges = []
param logRetentionDays = 30
param logFilter = 'info,bifrost=debug'
param tags = {
  environment: 'dev'
}
