// Optional (enableFrontDoor): origin (the Function App), route and WAF policy of the profile and
// endpoint made by frontDoorProfile.bicep.
//
// WAF: custom rules work on both SKUs; Microsoft's managed rule sets (DRS 2.1 with the OWASP and
// Log4Shell rules, Bot Manager) need Premium_AzureFrontDoor, so they are added only there.
// Rate limiting per client IP is a custom rule on both SKUs.

param profileName string
param endpointName string
param namePrefix string
param tags object

@description('Default host name of the Function App (the origin).')
param originHostName string

@allowed([
  'Standard_AzureFrontDoor'
  'Premium_AzureFrontDoor'
])
param skuName string

@allowed([
  'Detection'
  'Prevention'
])
param wafMode string

@description('Requests per minute one client IP may send before the WAF blocks it (0 = no rate-limit rule).')
param wafRateLimitPerMinute int

var isPremium = skuName == 'Premium_AzureFrontDoor'
var wafPolicyName = 'waf${replace(namePrefix, '-', '')}'

resource profile 'Microsoft.Cdn/profiles@2024-02-01' existing = {
  name: profileName
}

resource endpoint 'Microsoft.Cdn/profiles/afdEndpoints@2024-02-01' existing = {
  parent: profile
  name: endpointName
}

resource originGroup 'Microsoft.Cdn/profiles/originGroups@2024-02-01' = {
  parent: profile
  name: 'bifrost'
  properties: {
    loadBalancingSettings: {
      sampleSize: 4
      successfulSamplesRequired: 3
      additionalLatencyInMilliseconds: 50
    }
    healthProbeSettings: {
      probePath: '/api/health'
      probeRequestType: 'GET'
      probeProtocol: 'Https'
      probeIntervalInSeconds: 120
    }
    sessionAffinityState: 'Disabled'
  }
}

resource origin 'Microsoft.Cdn/profiles/originGroups/origins@2024-02-01' = {
  parent: originGroup
  name: 'function-app'
  properties: {
    hostName: originHostName
    originHostHeader: originHostName
    httpPort: 80
    httpsPort: 443
    priority: 1
    weight: 1000
    enabledState: 'Enabled'
    enforceCertificateNameCheck: true
  }
}

resource route 'Microsoft.Cdn/profiles/afdEndpoints/routes@2024-02-01' = {
  parent: endpoint
  name: 'all'
  properties: {
    originGroup: {
      id: originGroup.id
    }
    supportedProtocols: [
      'Http'
      'Https'
    ]
    patternsToMatch: [
      '/*'
    ]
    forwardingProtocol: 'HttpsOnly'
    linkToDefaultDomain: 'Enabled'
    httpsRedirect: 'Enabled'
    enabledState: 'Enabled'
  }
  dependsOn: [
    origin
  ]
}

var rateLimitRules = wafRateLimitPerMinute > 0 ? [
  {
    name: 'ratelimitperip'
    priority: 100
    enabledState: 'Enabled'
    ruleType: 'RateLimitRule'
    rateLimitDurationInMinutes: 1
    rateLimitThreshold: wafRateLimitPerMinute
    matchConditions: [
      {
        matchVariable: 'RequestUri'
        operator: 'RegEx'
        negateCondition: false
        matchValue: [
          '.*'
        ]
        transforms: []
      }
    ]
    action: 'Block'
  }
] : []

var managedRuleSets = isPremium ? [
  {
    ruleSetType: 'Microsoft_DefaultRuleSet'
    ruleSetVersion: '2.1'
    ruleSetAction: 'Block'
  }
  {
    ruleSetType: 'Microsoft_BotManagerRuleSet'
    ruleSetVersion: '1.1'
  }
] : []

resource waf 'Microsoft.Network/FrontDoorWebApplicationFirewallPolicies@2024-02-01' = {
  name: wafPolicyName
  location: 'global'
  tags: tags
  sku: {
    name: skuName
  }
  properties: {
    policySettings: {
      enabledState: 'Enabled'
      mode: wafMode
      requestBodyCheck: 'Enabled'
    }
    customRules: {
      rules: rateLimitRules
    }
    managedRules: {
      managedRuleSets: managedRuleSets
    }
  }
}

resource securityPolicy 'Microsoft.Cdn/profiles/securityPolicies@2024-02-01' = {
  parent: profile
  name: 'waf'
  properties: {
    parameters: {
      type: 'WebApplicationFirewall'
      wafPolicy: {
        id: waf.id
      }
      associations: [
        {
          domains: [
            {
              id: endpoint.id
            }
          ]
          patternsToMatch: [
            '/*'
          ]
        }
      ]
    }
  }
}

output hostName string = endpoint.properties.hostName
