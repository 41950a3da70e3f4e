// Optional (enableFrontDoor): the Azure Front Door profile and its endpoint. Kept apart from the
// origin and route (frontDoor.bicep) because the Function App needs the profile's frontDoorId for
// its access restriction (only this profile may call the origin) and the endpoint's host name for
// BIFROST_ALLOWED_ORIGINS, while the origin needs the app's host name.

param name string
param endpointName string
param tags object

@allowed([
  'Standard_AzureFrontDoor'
  'Premium_AzureFrontDoor'
])
param skuName string

resource profile 'Microsoft.Cdn/profiles@2024-02-01' = {
  name: name
  location: 'global'
  tags: tags
  sku: {
    name: skuName
  }
  properties: {
    originResponseTimeoutSeconds: 240
  }
}

resource endpoint 'Microsoft.Cdn/profiles/afdEndpoints@2024-02-01' = {
  parent: profile
  name: endpointName
  location: 'global'
  tags: tags
  properties: {
    enabledState: 'Enabled'
  }
}

output name string = profile.name
output endpointName string = endpoint.name
output endpointHostName string = endpoint.properties.hostName
// Sent by Front Door to the origin in X-Azure-FDID.
output frontDoorId string = profile.properties.frontDoorId
