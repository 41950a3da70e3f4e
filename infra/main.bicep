// Bifrost on Azure: one resource group holding the Function App (custom handler), its managed
// identity, storage, Key Vault, monitoring and the optional edge/network pieces.
//
// Deploy: az deployment group create -g <rg> -f infra/main.bicep -p infra/parameters/prod.bicepparam
// The walkthrough, with costs, is docs/deploy.md.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------- required

@description('Short lower-case name (letters and digits, 2-10) that starts every resource name, e.g. bifrost.')
@minLength(2)
@maxLength(10)
param namePrefix string

@description('Application (client) id of the Entra ID app registration Easy Auth signs users in with (docs/deploy.md, step 3).')
param easyAuthClientId string


// ---------------------------------------------------------------- hosting

@description('Azure region of the resources (Static Web App and Front Door have their own).')
param location string = resourceGroup().location

@description('Hosting plan: FC1 = Flex Consumption (serverless, scale to zero), EP1/EP2/EP3 = Elastic Premium (always warm, slots, containers).')
@allowed([
  'FC1'
  'EP1'
  'EP2'
  'EP3'
])
param hostingPlanSku string = 'FC1'

@description('Flex Consumption: most instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param flexMaximumInstanceCount int = 40

@description('Flex Consumption: instance memory in MB.')
@allowed([
  512
  2048
  4096
])
param flexInstanceMemoryMB int = 2048

@description('Elastic Premium: most instances the plan bursts to.')
@minValue(1)
@maxValue(100)
param elasticPremiumMaximumBurst int = 10

@description('Elastic Premium: always-ready instances (billed around the clock).')
@minValue(1)
@maxValue(20)
param elasticPremiumMinimumInstances int = 1

@description('Elastic Premium: keep the Azure Files content share. Needs shared-key access on the storage account (the key is kept in Key Vault). Default false: the app runs from its package URL with the managed identity and the account refuses keys.')
param elasticPremiumContentShare bool = false

@description('Elastic Premium: container image to run (registry/name:tag, built from the Dockerfile) instead of the zip package; empty = zip package. The identity needs AcrPull on the registry.')
param containerImage string = ''

@description('Spread the plan over availability zones (Elastic Premium: at least 3 always-ready instances).')
param zoneRedundant bool = false

@description('Storage redundancy.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_ZRS'

@description('Blob name of the zip package in the package container (Elastic Premium run-from-package).')
param packageBlobName string = 'bifrost.zip'

// ---------------------------------------------------------------- identity and secrets

@description('Client secret of that app registration, written to Key Vault (reached by a Key Vault reference). Pass it on the first deployment and when rotating; empty = keep the secret already in the vault (so CI never handles it).')
@secure()
param easyAuthClientSecret string = ''

@description('Entra tenant whose users sign in through Easy Auth (default: the deploying tenant).')
param easyAuthTenantId string = subscription().tenantId

@description('Days until the stored Easy Auth client secret expires in Key Vault; match the Entra credential.')
@minValue(1)
@maxValue(730)
param easyAuthClientSecretDays int = 365

@description('Public network access of Key Vault: Enabled, or Disabled (requires enablePrivateNetworking).')
@allowed([
  'Enabled'
  'Disabled'
])
param keyVaultPublicNetworkAccess string = 'Enabled'

@description('Principal (object) id of the CI/CD service principal; gets Storage Blob Data Contributor on the package container only. Empty = none.')
param deployerPrincipalId string = ''

// ---------------------------------------------------------------- optional features

@description('Create a VNet, VNet-integrate the app and reach storage and Key Vault through private endpoints only.')
param enablePrivateNetworking bool = false

@description('Address space of the VNet (enablePrivateNetworking).')
param vnetAddressPrefix string = '10.60.0.0/16'

@description('Subnet of the VNet integration, inside vnetAddressPrefix (/24 recommended).')
param integrationSubnetPrefix string = '10.60.0.0/24'

@description('Subnet of the private endpoints, inside vnetAddressPrefix.')
param privateEndpointSubnetPrefix string = '10.60.1.0/24'

@description('Put Azure Front Door with a WAF policy in front; the app then accepts traffic from that Front Door only (plus allowedIpRanges).')
param enableFrontDoor bool = false

@description('Front Door tier: Premium adds Microsoft managed WAF rule sets (OWASP/DRS, bots) and Private Link origins.')
@allowed([
  'Standard_AzureFrontDoor'
  'Premium_AzureFrontDoor'
])
param frontDoorSku string = 'Premium_AzureFrontDoor'

@description('WAF mode: Prevention blocks, Detection only logs.')
@allowed([
  'Detection'
  'Prevention'
])
param wafMode string = 'Prevention'

@description('WAF rate limit: requests per minute per client IP (0 = no rule).')
@minValue(0)
param wafRateLimitPerMinute int = 1000

@description('Client IP ranges (CIDR) allowed to reach the app; empty = no IP restriction.')
param allowedIpRanges array = []

@description('Create a Static Web App to host the SPA apart from the API.')
param enableStaticWebApp bool = false

@description('Region of the Static Web App (a Static Web Apps region).')
@allowed([
  'westus2'
  'centralus'
  'eastus2'
  'westeurope'
  'eastasia'
])
param staticWebAppLocation string = 'westeurope'

@description('Static Web App tier.')
@allowed([
  'Free'
  'Standard'
])
param staticWebAppSku string = 'Standard'

@description('Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Tags added to every resource.')
param tags object = {}

// ---------------------------------------------------------------- Bifrost settings

@description('BIFROST_WORKSPACE_LOCATION: folder of workflow files inside the package.')
param workspaceLocation string = 'workspace'

@description('BIFROST_PYTHON_THREADS: Python engine threads per instance (1-64).')
@minValue(1)
@maxValue(64)
param pythonThreads int = 2

@description('BIFROST_MAX_BODY_BYTES: largest request body accepted.')
@minValue(1024)
param maxBodyBytes int = 10485760

@description('BIFROST_RATE_LIMIT: requests per second per organization and per key (0 = off).')
@minValue(0)
param rateLimitPerSecond int = 100

@description('BIFROST_EXECUTION_LEASE_SECONDS: lease of a running execution (2-3600).')
@minValue(2)
@maxValue(3600)
param executionLeaseSeconds int = 60

@description('BIFROST_MAX_RUNNING_PER_ORG: queued executions of one organization running at once (0 = no limit).')
@minValue(0)
param maxRunningPerOrg int = 0

@description('BIFROST_RETENTION_DAYS: days finished executions and logs are kept.')
@minValue(1)
@maxValue(36500)
param retentionDays int = 90

@description('BIFROST_LOG: log filter (tracing EnvFilter syntax).')
param logFilter string = 'info'

@description('BIFROST_ANONYMOUS_RATE_LIMIT: requests per second per client address without credentials (0 = off).')
@minValue(0)
param anonymousRateLimitPerSecond int = 20

@description('BIFROST_ANONYMOUS_MAX_BODY_BYTES: largest body accepted without credentials.')
@minValue(1024)
param anonymousMaxBodyBytes int = 65536

@description('BIFROST_UPLOAD_RATE_LIMIT: anonymous file uploads per second per client address (0 = off).')
@minValue(0)
param uploadRateLimitPerSecond int = 2

@description('BIFROST_MAX_STREAMS_PER_CALLER: live log streams one caller may hold open per instance (1-1000).')
@minValue(1)
@maxValue(1000)
param maxStreamsPerCaller int = 8

@description('Deployment time; sets secret expiry dates. Leave the default.')
param deploymentTime string = utcNow()

// ---------------------------------------------------------------- names

var suffix = uniqueString(resourceGroup().id)
var prefix = toLower(namePrefix)
var allTags = union({
  application: 'bifrost'
}, tags)
var isFlex = hostingPlanSku == 'FC1'
var useContentShare = !isFlex && empty(containerImage) && elasticPremiumContentShare
var packageContainerName = 'app-package'
var contentShareName = 'bifrost-content'
var secretExpiry = dateTimeToEpoch(dateTimeAdd(deploymentTime, 'P${easyAuthClientSecretDays}D'))

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-${prefix}-${suffix}'
    location: location
    tags: allTags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-${prefix}-${suffix}'
    appInsightsName: 'appi-${prefix}-${suffix}'
    location: location
    tags: allTags
    retentionInDays: logRetentionDays
    publisherPrincipalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: take('st${replace(prefix, '-', '')}${suffix}', 24)
    location: location
    tags: allTags
    skuName: storageSku
    allowSharedKeyAccess: useContentShare
    privateNetworkOnly: enablePrivateNetworking
    appPrincipalId: identity.outputs.principalId
    deployerPrincipalId: deployerPrincipalId
    workspaceId: monitoring.outputs.workspaceId
    createContentShare: useContentShare
    contentShareName: contentShareName
    packageContainerName: packageContainerName
  }
}

module keyVault 'modules/keyVault.bicep' = {
  name: 'keyVault'
  params: {
    name: take('kv-${prefix}-${suffix}', 24)
    location: location
    tags: allTags
    publicNetworkAccess: keyVaultPublicNetworkAccess
    privateNetworkOnly: enablePrivateNetworking
    appPrincipalId: identity.outputs.principalId
    workspaceId: monitoring.outputs.workspaceId
    easyAuthClientSecret: easyAuthClientSecret
    easyAuthClientSecretExpiry: secretExpiry
  }
}

module contentShareSecret 'modules/contentShareSecret.bicep' = if (useContentShare) {
  name: 'contentShareSecret'
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    expiry: secretExpiry
  }
}

module network 'modules/network.bicep' = if (enablePrivateNetworking) {
  name: 'network'
  params: {
    namePrefix: '${prefix}-${suffix}'
    location: location
    tags: allTags
    addressPrefix: vnetAddressPrefix
    integrationSubnetPrefix: integrationSubnetPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
    isFlexConsumption: isFlex
    storageAccountId: storage.outputs.id
    keyVaultId: keyVault.outputs.id
    includeFileEndpoint: useContentShare
  }
}

module frontDoorProfile 'modules/frontDoorProfile.bicep' = if (enableFrontDoor) {
  name: 'frontDoorProfile'
  params: {
    name: 'afd-${prefix}-${suffix}'
    endpointName: 'ep-${prefix}-${suffix}'
    tags: allTags
    skuName: frontDoorSku
  }
}

module staticWebApp 'modules/staticWebApp.bicep' = if (enableStaticWebApp) {
  name: 'staticWebApp'
  params: {
    name: 'stapp-${prefix}-${suffix}'
    location: staticWebAppLocation
    tags: allTags
    skuName: staticWebAppSku
  }
}

module functionApp 'modules/functionApp.bicep' = {
  name: 'functionApp'
  params: {
    planName: 'plan-${prefix}-${suffix}'
    appName: 'func-${prefix}-${suffix}'
    location: location
    tags: allTags
    hostingPlanSku: hostingPlanSku
    flexMaximumInstanceCount: flexMaximumInstanceCount
    flexInstanceMemoryMB: flexInstanceMemoryMB
    elasticPremiumMaximumBurst: elasticPremiumMaximumBurst
    elasticPremiumMinimumInstances: elasticPremiumMinimumInstances
    zoneRedundant: zoneRedundant
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    packageContainerName: packageContainerName
    packageBlobName: packageBlobName
    keyVaultUri: keyVault.outputs.uri
    easyAuthSecretUri: keyVault.outputs.easyAuthSecretUri
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    elasticPremiumContentShare: elasticPremiumContentShare
    contentShareName: contentShareName
    contentShareSecretUri: useContentShare ? contentShareSecret.outputs.secretUri : ''
    containerImage: containerImage
    integrationSubnetId: enablePrivateNetworking ? network.outputs.integrationSubnetId : ''
    allowedIpRanges: allowedIpRanges
    frontDoorId: enableFrontDoor ? frontDoorProfile.outputs.frontDoorId : ''
    browserOrigins: concat(enableFrontDoor ? [
      'https://${frontDoorProfile.outputs.endpointHostName}'
    ] : [], enableStaticWebApp ? [
      'https://${staticWebApp.outputs.hostName}'
    ] : [])
    easyAuthClientId: easyAuthClientId
    easyAuthTenantId: easyAuthTenantId
    behindFrontDoor: enableFrontDoor
    workspaceLocation: workspaceLocation
    pythonThreads: pythonThreads
    maxBodyBytes: maxBodyBytes
    rateLimitPerSecond: rateLimitPerSecond
    executionLeaseSeconds: executionLeaseSeconds
    maxRunningPerOrg: maxRunningPerOrg
    retentionDays: retentionDays
    logFilter: logFilter
    anonymousRateLimitPerSecond: anonymousRateLimitPerSecond
    anonymousMaxBodyBytes: anonymousMaxBodyBytes
    uploadRateLimitPerSecond: uploadRateLimitPerSecond
    maxStreamsPerCaller: maxStreamsPerCaller
  }
}

module frontDoor 'modules/frontDoor.bicep' = if (enableFrontDoor) {
  name: 'frontDoor'
  params: {
    profileName: enableFrontDoor ? frontDoorProfile.outputs.name : ''
    endpointName: enableFrontDoor ? frontDoorProfile.outputs.endpointName : ''
    namePrefix: '${prefix}-${suffix}'
    tags: allTags
    originHostName: functionApp.outputs.defaultHostName
    skuName: frontDoorSku
    wafMode: wafMode
    wafRateLimitPerMinute: wafRateLimitPerMinute
  }
}

@description('Public URL of Bifrost (Front Door when enabled, else the Function App).')
output appUrl string = enableFrontDoor ? 'https://${frontDoor.outputs.hostName}' : 'https://${functionApp.outputs.defaultHostName}'

@description('The Function App host name; Easy Auth redirect URI: https://<this>/.auth/login/aad/callback.')
output functionAppHostName string = functionApp.outputs.defaultHostName

output functionAppName string = functionApp.outputs.name
output storageAccountName string = storage.outputs.name
output packageContainerName string = packageContainerName
output identityClientId string = identity.outputs.clientId
output identityPrincipalId string = identity.outputs.principalId
output keyVaultUri string = keyVault.outputs.uri
output keyVaultName string = keyVault.outputs.name
output staticWebAppUrl string = enableStaticWebApp ? 'https://${staticWebApp.outputs.hostName}' : ''
output appSettingNames array = functionApp.outputs.settingNames

@description('How CI ships a new version: flex-one-deploy (az functionapp deployment source config-zip), blob-package (upload to the package container, restart), zip-deploy (config-zip to the content share), container (new image tag).')
output deploymentMethod string = isFlex ? 'flex-one-deploy' : (!empty(containerImage) ? 'container' : (useContentShare ? 'zip-deploy' : 'blob-package'))
