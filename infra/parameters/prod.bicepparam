// Production: Flex Consumption behind Azure Front Door Premium (WAF with Microsoft's managed
// rule sets), storage and Key Vault reachable only through private endpoints from the app's VNet
// integration, zone-redundant storage. See docs/deploy.md "What it costs" before deploying.
//
// Values that differ per tenant come from the environment, so this file needs no edits:
//   BIFROST_EASYAUTH_CLIENT_ID, BIFROST_EASYAUTH_CLIENT_SECRET (docs/deploy.md, step 3),
//   BIFROST_DEPLOYER_PRINCIPAL_ID (optional, the CI service principal's object id).
using '../main.bicep'

param namePrefix = 'bifrost'
param easyAuthClientId = readEnvironmentVariable('BIFROST_EASYAUTH_CLIENT_ID')
param easyAuthClientSecret = readEnvironmentVariable('BIFROST_EASYAUTH_CLIENT_SECRET', '')
param deployerPrincipalId = readEnvironmentVariable('BIFROST_DEPLOYER_PRINCIPAL_ID', '')

param hostingPlanSku = 'FC1'
param flexMaximumInstanceCount = 40
param flexInstanceMemoryMB = 2048
param storageSku = 'Standard_ZRS'
param enablePrivateNetworking = true
param vnetAddressPrefix = '10.60.0.0/16'
param integrationSubnetPrefix = '10.60.0.0/24'
param privateEndpointSubnetPrefix = '10.60.1.0/24'
param keyVaultPublicNetworkAccess = 'Disabled'
param enableFrontDoor = true
param frontDoorSku = 'Premium_AzureFrontDoor'
param wafMode = 'Prevention'
param wafRateLimitPerMinute = 1000
param enableStaticWebApp = false
param allowedIpRanges = []
param logRetentionDays = 90
param retentionDays = 90
param logFilter = 'info'
param tags = {
  environment: 'prod'
}
