// Key Vault in RBAC mode: Bifrost's secret store (BIFROST_SECRETS=keyvault) and the home of the
// Easy Auth client secret (and, only for an Elastic Premium content share, the storage connection
// string), which app settings reach as Key Vault references.

param name string
param location string
param tags object

@description('Public network access of the vault: Enabled, or Disabled (then the app needs enablePrivateNetworking).')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string

@description('True when a private endpoint is created: the firewall then denies public traffic.')
param privateNetworkOnly bool

@description('Principal id of the app identity (Key Vault Secrets Officer: Bifrost reads and writes secrets).')
param appPrincipalId string

@description('Log Analytics workspace receiving the audit log.')
param workspaceId string

@description('Easy Auth client secret of the Entra app registration; empty = leave the secret in the vault as it is.')
@secure()
param easyAuthClientSecret string

@description('Unix time (seconds) after which the stored Easy Auth secret is treated as expired; match the Entra credential expiry.')
param easyAuthClientSecretExpiry int

// Built-in role "Key Vault Secrets Officer": get, list, set, delete secrets; Bifrost's secrets API
// writes secrets, so "Secrets User" (read-only) is not enough.
var keyVaultSecretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_109:Default action is Deny when a private endpoint exists; without one the Function App (no fixed outbound IPs) must reach the vault over its public endpoint with Entra ID auth.
    // checkov:skip=CKV_AZURE_189:Public network access is a parameter (keyVaultPublicNetworkAccess); prod.bicepparam disables it together with enablePrivateNetworking.
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: privateNetworkOnly ? 'Deny' : 'Allow'
    }
  }
}

resource appSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, keyVaultSecretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

var easyAuthSecretName = 'easyauth-client-secret'

// Read by the platform through the Key Vault reference in MICROSOFT_PROVIDER_AUTHENTICATION_SECRET.
// Written only when a value is passed, so CI deployments never need (or overwrite) it.
resource easyAuthSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(easyAuthClientSecret)) {
  parent: vault
  name: easyAuthSecretName
  properties: {
    // checkov:skip=CKV_AZURE_41:False positive: checkov does not read properties of a conditional (`if`) resource; attributes.exp is set below.
    // checkov:skip=CKV_AZURE_114:False positive: checkov does not read properties of a conditional (`if`) resource; contentType is set below.
    value: easyAuthClientSecret
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: easyAuthClientSecretExpiry
    }
  }
}

resource auditLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
// Versionless, so a rotated secret is picked up by the platform without a redeployment.
output easyAuthSecretUri string = '${vault.properties.vaultUri}secrets/${easyAuthSecretName}'
