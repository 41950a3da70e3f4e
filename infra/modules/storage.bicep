// The storage account that is both the Functions host's AzureWebJobsStorage and Bifrost's
// storage (BIFROST_STORAGE=azure): tables, queues and blob containers, reached with the managed
// identity only.
//
// Shared key access: off unless the caller needs it (allowSharedKeyAccess). Nothing in Bifrost or
// in the Flex Consumption plan needs a key: the host and the binary use identity-based
// connections, and Flex fetches its package from the deployment container with the identity.
// Only an Elastic Premium app that keeps the Azure Files content share
// (WEBSITE_CONTENTAZUREFILECONNECTIONSTRING) needs one, because Azure Files does not support
// identity-based connections there; main.bicep turns keys on for exactly that case
// (elasticPremiumContentShare=true) and keeps the connection string in Key Vault.

param name string
param location string
param tags object

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param skuName string

@description('Shared key (account key) authorization. Keep false unless an Azure Files content share is used.')
param allowSharedKeyAccess bool

@description('Reject traffic from public networks (reach the account through private endpoints only).')
param privateNetworkOnly bool

@description('Principal id of the app identity that gets data-plane roles.')
param appPrincipalId string

@description('Optional principal id (CI/CD service principal) that may upload packages to the package container.')
param deployerPrincipalId string

@description('Log Analytics workspace receiving the storage resource logs.')
param workspaceId string

@description('Create the Azure Files share used as Elastic Premium content share.')
param createContentShare bool

@description('Name of the Azure Files content share (only with createContentShare).')
param contentShareName string

@description('Blob container that holds the app package (Flex deployment container / EP run-from-package).')
param packageContainerName string

// The tables, queues and blob containers Bifrost uses (names from the Rust source:
// `const .*_TABLE`, `QUEUE`, `*_CONTAINER` in src/). The binary creates any that are missing,
// so this list documents them and lets an operator see and lock them; a name missing here still
// works. Azure Tables names are case-insensitive.
var tableNames = [
  'AuditAnchor' // src/audit/log.rs ANCHOR_TABLE
  'AuditLog' // src/audit/log.rs AUDIT_TABLE
  'Config' // src/domain/rows.rs CONFIG_TABLE
  'DataProviderCache' // src/forms/providers.rs CACHE_TABLE
  'Entities' // src/domain/rows.rs ENTITIES_TABLE
  'ExecutionLogs' // src/executions/logs.rs LOGS_TABLE
  'Executions' // src/executions/mod.rs TABLE
  'FormIndex' // src/forms/store.rs FORM_INDEX_TABLE
  'Forms' // src/forms/store.rs FORMS_TABLE
  'FunctionKeys' // src/auth/keys.rs FUNCTION_KEYS_TABLE
  'Relationships' // src/domain/rows.rs RELATIONSHIPS_TABLE
  'Schedules' // src/schedules/state.rs SCHEDULES_TABLE
  'Timers' // src/jobs/timers.rs TIMERS_TABLE
  'WorkflowKeys' // src/auth/workflow_keys.rs WORKFLOW_KEYS_TABLE
]
var queueNames = [
  'workflow-executions' // src/executions/runner.rs QUEUE; functions/workflow_executions
  'workflow-executions-poison' // the host's poison queue; functions/workflow_executions_poison
]
var containerNames = [
  'execution-data' // src/executions/mod.rs RESULT_CONTAINER
  'form-uploads' // src/forms/files.rs UPLOADS_CONTAINER
  'sdk-files' // src/sdk_files.rs FILES_CONTAINER
  packageContainerName // the app package (not used by Bifrost itself)
]

// Built-in role definition ids (the same in every subscription).
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
// Blob Data Owner (not Contributor): the Functions host manages blob leases and containers of
// azure-webjobs-* (timer singletons, keys), which the identity-based host storage docs require.
var appRoleIds = [
  storageBlobDataOwnerRoleId
  storageQueueDataContributorRoleId
  storageTableDataContributorRoleId
]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    // checkov:skip=CKV_AZURE_206:Redundancy is the storageSku parameter (main.bicep): ZRS by default, GZRS/GRS for regional failover where the region offers it; checkov cannot see the value passed to the module.
    // checkov:skip=CKV_AZURE_35:Default action is Deny when privateNetworkOnly; without private endpoints Flex/EP have no fixed outbound IPs, so the account must accept Entra-authenticated public traffic.
    // checkov:skip=CKV_AZURE_59:Public network access is disabled when privateNetworkOnly (enablePrivateNetworking); otherwise the app reaches the account over the public endpoint, with identity auth only.
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: allowSharedKeyAccess
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: privateNetworkOnly ? 'Disabled' : 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: privateNetworkOnly ? 'Deny' : 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    // Versioning keeps earlier app packages, so a rollback can restore one.
    isVersioningEnabled: true
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for container in containerNames: {
  parent: blobService
  name: container
  properties: {
    publicAccess: 'None'
  }
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queue in queueNames: {
  parent: queueService
  name: queue
}]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for table in tableNames: {
  parent: tableService
  name: table
}]

resource fileService 'Microsoft.Storage/storageAccounts/fileServices@2023-05-01' = if (createContentShare) {
  parent: account
  name: 'default'
}

resource contentShare 'Microsoft.Storage/storageAccounts/fileServices/shares@2023-05-01' = if (createContentShare) {
  parent: fileService
  name: contentShareName
  properties: {
    shareQuota: 100
  }
}

resource appRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in appRoleIds: {
  name: guid(account.id, appPrincipalId, roleId)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

// CI/CD may write the package container only (EP run-from-package uploads), nothing else.
resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: packageContainerName
}

resource deployerRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(account.id, deployerPrincipalId, storageBlobDataContributorRoleId, packageContainerName)
  scope: packageContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
    principalId: deployerPrincipalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [
    containers
  ]
}

// Resource logs of the data plane (who read, wrote, deleted), as the Functions storage guidance
// recommends for the account that holds function keys.
var serviceLogs = [
  {
    category: 'StorageRead'
    enabled: true
  }
  {
    category: 'StorageWrite'
    enabled: true
  }
  {
    category: 'StorageDelete'
    enabled: true
  }
]

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: workspaceId
    logs: serviceLogs
  }
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: queueService
  properties: {
    workspaceId: workspaceId
    logs: serviceLogs
  }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: tableService
  properties: {
    workspaceId: workspaceId
    logs: serviceLogs
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output tableNames array = tableNames
output queueNames array = queueNames
output containerNames array = containerNames
