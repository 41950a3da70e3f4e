// Elastic Premium with an Azure Files content share only (elasticPremiumContentShare=true).
//
// Azure Files cannot use a managed identity for the content share, so the host needs a connection
// string with an account key in WEBSITE_CONTENTAZUREFILECONNECTIONSTRING. It is written here into
// Key Vault and the app setting holds only a Key Vault reference, so no key appears in the app
// settings, the deployment history or the template outputs.

param storageAccountName string
param keyVaultName string

@description('Unix time (seconds) after which the secret counts as expired; rotate the account key before then.')
param expiry int

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource connection 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'content-share-connection-string'
  properties: {
    value: 'DefaultEndpointsProtocol=https;AccountName=${account.name};AccountKey=${account.listKeys().keys[0].value};EndpointSuffix=${environment().suffixes.storage}'
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: expiry
    }
  }
}

output secretUri string = connection.properties.secretUri
