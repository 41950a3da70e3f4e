// Optional (enableStaticWebApp): a Static Web App that hosts the SPA apart from the API.
//
// It is deliberately NOT linked to the Function App as a "linked backend": Static Web Apps would
// then authenticate /api calls itself and send its own x-ms-client-principal shape
// (identityProvider/userId/userRoles), which is not the App Service Easy Auth principal Bifrost
// trusts. The SPA calls the Function App's URL directly; functionApp.bicep allows the Static Web
// App's origin in CORS (with credentials, for the Easy Auth session cookie).

param name string
param tags object

@description('Static Web Apps regions: westus2, centralus, eastus2, westeurope, eastasia.')
@allowed([
  'westus2'
  'centralus'
  'eastus2'
  'westeurope'
  'eastasia'
])
param location string

@allowed([
  'Free'
  'Standard'
])
param skuName string

resource site 'Microsoft.Web/staticSites@2023-12-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuName
  }
  properties: {
    allowConfigFileUpdates: true
    stagingEnvironmentPolicy: 'Enabled'
  }
}

output hostName string = site.properties.defaultHostname
output name string = site.name
