// The one user-assigned managed identity Bifrost runs as.
//
// The Function App, the Functions host (AzureWebJobsStorage__*), the Bifrost binary (storage and
// Key Vault), Key Vault references in app settings, the Flex Consumption deployment container and
// Application Insights all use this identity; its role assignments live beside the resources they
// grant access to (storage.bicep, keyVault.bicep, monitoring.bicep).

@description('Name of the identity.')
param name string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
