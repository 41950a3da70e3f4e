// The Function App that runs the `bifrost` custom handler, its hosting plan, and App Service
// Authentication (Easy Auth v2).
//
// Every app setting is in ONE list, `appSettings` below; tests/deploy/test_settings_vs_template.py
// checks it against the settings the binary declares (src/settings.rs, settings_table!).

param planName string
param appName string
param location string
param tags object

@description('FC1 = Flex Consumption; EP1..EP3 = Elastic Premium.')
@allowed([
  'FC1'
  'EP1'
  'EP2'
  'EP3'
])
param hostingPlanSku string

@description('Flex Consumption: most instances the app scales out to.')
param flexMaximumInstanceCount int

@description('Flex Consumption: memory of one instance in MB.')
param flexInstanceMemoryMB int

@description('Elastic Premium: most instances the plan bursts to.')
param elasticPremiumMaximumBurst int

@description('Elastic Premium: instances kept warm (always ready), at least 1.')
param elasticPremiumMinimumInstances int

@description('Spread the plan across availability zones (Elastic Premium then needs at least 3 instances).')
param zoneRedundant bool

param identityId string
param identityClientId string

param storageAccountName string
param storageBlobEndpoint string
param packageContainerName string
param packageBlobName string

param keyVaultUri string
param easyAuthSecretUri string
param appInsightsConnectionString string

@description('Elastic Premium only: keep the Azure Files content share (needs an account key, kept in Key Vault).')
param elasticPremiumContentShare bool
param contentShareName string
param contentShareSecretUri string

@description('Elastic Premium only: run this container image (registry/name:tag) instead of a zip package; empty = zip package.')
param containerImage string

@description('Subnet for outbound VNet integration; empty = none.')
param integrationSubnetId string

@description('Client IP ranges (CIDR) allowed to call the app; empty = everyone (unless Front Door is on).')
param allowedIpRanges array

@description('Front Door profile id; when set, only that profile may call the app.')
param frontDoorId string

@description('Browser origins besides the app itself (Front Door endpoint, Static Web App) for BIFROST_ALLOWED_ORIGINS.')
param browserOrigins array

@description('Application (client) id of the Entra app registration used by Easy Auth.')
param easyAuthClientId string

@description('Entra tenant whose users may sign in.')
param easyAuthTenantId string

@description('True when Front Door sits in front: Easy Auth then builds redirect URLs from X-Forwarded-Host.')
param behindFrontDoor bool

// Bifrost tunables (see README "Settings").
param workspaceLocation string
param pythonThreads int
param maxBodyBytes int
param rateLimitPerSecond int
param executionLeaseSeconds int
param maxRunningPerOrg int
param retentionDays int
param logFilter string
param anonymousRateLimitPerSecond int
param anonymousMaxBodyBytes int
param uploadRateLimitPerSecond int
param maxStreamsPerCaller int

var isFlex = hostingPlanSku == 'FC1'
var isElasticPremium = !isFlex
var useContainer = isElasticPremium && !empty(containerImage)
var useContentShare = isElasticPremium && !useContainer && elasticPremiumContentShare
var useRunFromPackageUrl = isElasticPremium && !useContainer && !elasticPremiumContentShare

// THE list of app settings. Nothing else in infra/ sets an app setting.
//
// Deliberately absent (tests/deploy/test_settings_vs_template.py keeps the reasons):
// - FUNCTIONS_CUSTOMHANDLER_PORT: the Functions host sets it for the handler process.
// - WEBSITE_AUTH_ENABLED: the platform sets it when Easy Auth (authsettingsV2 below) is enabled;
//   setting it by hand would make Bifrost trust X-MS-CLIENT-PRINCIPAL headers that nothing
//   vouches for.
// - AzureWebJobsStorage (a connection string): storage is identity-based, no account key.
// - BIFROST_PORT, BIFROST_BIND: ignored under the host (loopback port from the host).
// - BIFROST_MASTER_KEY: the local secret store is not used (BIFROST_SECRETS=keyvault).
// - BIFROST_DEV_IDENTITY: must stay off; the binary refuses `admin` under the host.
// - BIFROST_TIMER_*: standalone only; functions/*/function.json holds the schedules here.
// - BIFROST_WORKER_SLOTS: the in-process queue worker is off under the host; the host's queue
//   trigger (host.json extensions.queues.batchSize) decides concurrency.
// - BIFROST_LOG_FORMAT: `auto` already means JSON lines under the host.
// - BIFROST_TRUSTED_PROXIES: under the host the binary trusts the loopback host, which forwards
//   App Service's X-Forwarded-For; Front Door's backend ranges are a large, changing service tag.
var appSettings = concat([
  // Bifrost (declared in src/settings.rs)
  {
    name: 'BIFROST_STORAGE'
    value: 'azure'
  }
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storageAccountName
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  {
    name: 'BIFROST_SECRETS'
    value: 'keyvault'
  }
  {
    name: 'AZURE_KEY_VAULT_URL'
    value: keyVaultUri
  }
  {
    name: 'AZURE_KEY_VAULT_CLIENT_ID'
    value: identityClientId
  }
  {
    name: 'BIFROST_WORKSPACE_LOCATION'
    value: workspaceLocation
  }
  {
    // The app root (/home/site/wwwroot) is read-only when the app runs from a package, but the
    // binary always creates its data folder and keeps temporary files (form uploads handed to
    // workflows) in <data dir>/tmp. Local, per instance, disposable.
    name: 'BIFROST_DATA_DIR'
    value: '/tmp/bifrost-data'
  }
  {
    name: 'BIFROST_PYTHON_THREADS'
    value: string(pythonThreads)
  }
  {
    name: 'BIFROST_MAX_BODY_BYTES'
    value: string(maxBodyBytes)
  }
  {
    name: 'BIFROST_RATE_LIMIT'
    value: string(rateLimitPerSecond)
  }
  {
    name: 'BIFROST_EXECUTION_LEASE_SECONDS'
    value: string(executionLeaseSeconds)
  }
  {
    name: 'BIFROST_MAX_RUNNING_PER_ORG'
    value: string(maxRunningPerOrg)
  }
  {
    name: 'BIFROST_RETENTION_DAYS'
    value: string(retentionDays)
  }
  {
    name: 'BIFROST_LOG'
    value: logFilter
  }
  {
    name: 'BIFROST_ANONYMOUS_RATE_LIMIT'
    value: string(anonymousRateLimitPerSecond)
  }
  {
    name: 'BIFROST_ANONYMOUS_MAX_BODY_BYTES'
    value: string(anonymousMaxBodyBytes)
  }
  {
    name: 'BIFROST_UPLOAD_RATE_LIMIT'
    value: string(uploadRateLimitPerSecond)
  }
  {
    name: 'BIFROST_MAX_STREAMS_PER_CALLER'
    value: string(maxStreamsPerCaller)
  }
  {
    // Browser pages served from another origin than the app (the Front Door endpoint, the Static
    // Web App): Bifrost answers CORS for them and accepts their state-changing requests.
    name: 'BIFROST_ALLOWED_ORIGINS'
    value: join(browserOrigins, ',')
  }
  {
    // Requests through our Front Door take the client address from X-Azure-ClientIP (the per-
    // address limits of callers without credentials would otherwise see Front Door's edges).
    name: 'BIFROST_FRONT_DOOR_ID'
    value: frontDoorId
  }
  // Functions host and platform
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsightsConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
  {
    // Read by Easy Auth (clientSecretSettingName below); the value is a Key Vault reference.
    name: 'MICROSOFT_PROVIDER_AUTHENTICATION_SECRET'
    value: '@Microsoft.KeyVault(SecretUri=${easyAuthSecretUri})'
  }
], isFlex ? [] : [
  // Flex Consumption rejects these two (runtime and version live in functionAppConfig there).
  {
    name: 'FUNCTIONS_WORKER_RUNTIME'
    value: 'custom'
  }
  {
    name: 'FUNCTIONS_EXTENSION_VERSION'
    value: '~4'
  }
], useRunFromPackageUrl ? [
  // Elastic Premium without Azure Files: the host runs the zip straight from the package
  // container, fetched with the managed identity (Microsoft's "Create an app without Azure Files").
  {
    name: 'WEBSITE_RUN_FROM_PACKAGE'
    value: '${storageBlobEndpoint}${packageContainerName}/${packageBlobName}'
  }
  {
    name: 'WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID'
    value: identityId
  }
] : [], useContentShare ? [
  // Elastic Premium with the Azure Files content share: the connection string (with the account
  // key Azure Files requires) stays in Key Vault; the platform cannot pre-validate a share behind a
  // Key Vault reference, hence the skip flag.
  {
    name: 'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING'
    value: '@Microsoft.KeyVault(SecretUri=${contentShareSecretUri})'
  }
  {
    name: 'WEBSITE_CONTENTSHARE'
    value: contentShareName
  }
  {
    name: 'WEBSITE_SKIP_CONTENTSHARE_VALIDATION'
    value: '1'
  }
  {
    name: 'WEBSITE_RUN_FROM_PACKAGE'
    value: '1'
  }
] : [], useContainer ? [
  // The container image (Dockerfile) carries the app; it listens on 8080 as a non-root user.
  {
    name: 'WEBSITES_ENABLE_APP_SERVICE_STORAGE'
    value: 'false'
  }
  {
    name: 'WEBSITES_PORT'
    value: '8080'
  }
] : [])

var ipRules = [for (cidr, i) in allowedIpRanges: {
  name: 'allow-ip-${i}'
  ipAddress: cidr
  action: 'Allow'
  priority: 200 + i
}]
var frontDoorRules = empty(frontDoorId) ? [] : [
  {
    name: 'allow-front-door'
    tag: 'ServiceTag'
    ipAddress: 'AzureFrontDoor.Backend'
    action: 'Allow'
    priority: 100
    headers: {
      'x-azure-fdid': [
        frontDoorId
      ]
    }
  }
]
var accessRules = concat(frontDoorRules, ipRules)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: isFlex ? 'functionapp' : 'elastic'
  sku: isFlex ? {
    name: 'FC1'
    tier: 'FlexConsumption'
  } : {
    name: hostingPlanSku
    tier: 'ElasticPremium'
  }
  properties: {
    // checkov:skip=CKV_AZURE_225:Zone redundancy is the zoneRedundant parameter (it triples the Elastic Premium minimum); off by default for cost.
    reserved: true
    zoneRedundant: zoneRedundant
    maximumElasticWorkerCount: isFlex ? null : elasticPremiumMaximumBurst
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: tags
  kind: useContainer ? 'functionapp,linux,container' : 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    // checkov:skip=CKV_AZURE_17:Callers are browsers (Easy Auth) and API clients with Bifrost keys; client certificates would lock both out.
    // checkov:skip=CKV_AZURE_222:The app is public by design (browsers, webhooks); restrict it with allowedIpRanges or Front Door (enableFrontDoor), which lock the origin down.
    // checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero; Elastic Premium keeps elasticPremiumMinimumInstances warm.
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(integrationSubnetId) ? null : integrationSubnetId
    vnetRouteAllEnabled: !empty(integrationSubnetId)
    vnetContentShareEnabled: useContentShare && !empty(integrationSubnetId)
    publicNetworkAccess: 'Enabled'
    functionAppConfig: isFlex ? {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${packageContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: flexMaximumInstanceCount
        instanceMemoryMB: flexInstanceMemoryMB
      }
      runtime: {
        // The custom handler runtime of Flex Consumption (no FUNCTIONS_WORKER_RUNTIME there).
        name: 'custom'
        version: '1.0'
      }
    } : null
    siteConfig: {
      appSettings: appSettings
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      remoteDebuggingEnabled: false
      http20Enabled: true
      linuxFxVersion: useContainer ? 'DOCKER|${containerImage}' : null
      acrUseManagedIdentityCreds: useContainer
      acrUserManagedIdentityID: useContainer ? identityClientId : null
      preWarmedInstanceCount: isFlex ? null : elasticPremiumMinimumInstances
      minimumElasticInstanceCount: isFlex ? null : elasticPremiumMinimumInstances
      functionAppScaleLimit: isFlex ? null : elasticPremiumMaximumBurst
      // Flex Consumption has no platform health check; Front Door probes /api/health there.
      healthCheckPath: isFlex ? null : '/api/health'
      httpLoggingEnabled: true
      detailedErrorLoggingEnabled: true
      requestTracingEnabled: true
      ipSecurityRestrictions: accessRules
      ipSecurityRestrictionsDefaultAction: empty(accessRules) ? 'Allow' : 'Deny'
      // Deployment endpoints (SCM/Kudu) keep their own rules: CI deploys from GitHub-hosted
      // runners, and basic auth is off below, so SCM accepts Entra ID tokens only.
      scmIpSecurityRestrictionsUseMain: false
      // No platform CORS: Bifrost answers CORS itself for BIFROST_ALLOWED_ORIGINS (platform CORS
      // would take over the preflight and hide Bifrost's origin checks).
    }
  }
}

// No FTP and no basic-auth deployments: CI deploys with its OpenID Connect (Entra ID) identity.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// App Service Authentication (Easy Auth v2) with Microsoft Entra ID.
//
// What Easy Auth can do: ONE unauthenticated action for the whole app
// (globalValidation.unauthenticatedClientAction: RedirectToLoginPage | Return401 | Return403 |
// AllowAnonymous); `excludedPaths` only lists paths that are NOT redirected. There is no
// per-path "redirect here, 401 there".
//
// Choice: AllowAnonymous, the documented option for apps with a public shell such as SPAs
// ("defers authorization of unauthenticated traffic to your application code; for authenticated
// requests App Service passes along authentication information in the HTTP headers"). Then:
// - /api: Bifrost itself answers 401 to any request without a function key, workflow key or
//   Easy Auth principal (README "Identity and tenancy"); /api/health stays public for probes;
//   `x-functions-key`, `Authorization: Bearer wk_...` and public endpoints reach Bifrost.
// - the SPA: its shell holds no data; on a 401 from /api it sends the browser to
//   /.auth/login/aad?post_login_redirect_uri=<current page> (the sign-in redirect).
// Rejected: RedirectToLoginPage with excludedPaths ['/api']: it would also redirect to the
// sign-in page every non-/api URL, and Microsoft documents excluded paths only as "not
// redirected", not whether signed-in users' X-MS-CLIENT-PRINCIPAL still reaches them, which
// Bifrost needs on /api. Return401 globally would break the sign-in redirect of the SPA.
resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'authsettingsV2'
  properties: {
    // Checkov runs its `web`-config and authsettings (v1) checks on every Microsoft.Web/sites/config
    // resource; this one is authsettingsV2, so these are false positives here:
    // checkov:skip=CKV_AZURE_13:authsettingsV2 enables auth with platform.enabled=true; the check reads the v1 `enabled` property.
    // checkov:skip=CKV_AZURE_63:HTTP logging is siteConfig.httpLoggingEnabled=true on the site; not an authsettingsV2 property.
    // checkov:skip=CKV_AZURE_65:Detailed errors are siteConfig.detailedErrorLoggingEnabled=true on the site; not an authsettingsV2 property.
    // checkov:skip=CKV_AZURE_66:Failed request tracing is siteConfig.requestTracingEnabled=true on the site; not an authsettingsV2 property.
    // checkov:skip=CKV_AZURE_80:Not a .NET app (a Rust custom handler); netFrameworkVersion does not apply.
    // checkov:skip=CKV_AZURE_88:Bifrost keeps no files on a shared file system; not an authsettingsV2 property.
    // checkov:skip=CKV_AZURE_222:Public network access is decided on the site (see the site's suppression); not an authsettingsV2 property.
    platform: {
      enabled: true
      runtimeVersion: '~1'
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    httpSettings: {
      requireHttps: true
      routes: {
        apiPrefix: '/.auth'
      }
      forwardProxy: {
        convention: behindFrontDoor ? 'Standard' : 'NoProxy'
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          openIdIssuer: '${environment().authentication.loginEndpoint}${easyAuthTenantId}/v2.0'
          clientId: easyAuthClientId
          clientSecretSettingName: 'MICROSOFT_PROVIDER_AUTHENTICATION_SECRET'
        }
        login: {
          disableWWWAuthenticate: false
        }
        validation: {
          allowedAudiences: [
            'api://${easyAuthClientId}'
            easyAuthClientId
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: true
        tokenRefreshExtensionHours: 72
      }
      preserveUrlFragmentsForLogins: true
      cookieExpiration: {
        convention: 'FixedTime'
        timeToExpiration: '08:00:00'
      }
      nonce: {
        validateNonce: true
        nonceExpirationInterval: '00:05:00'
      }
    }
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
output settingNames array = [for setting in appSettings: setting.name]
