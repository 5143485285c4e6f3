//! The small test CRD both API server fidelity suites (kube-rs and
//! kubectl) use.

/// A test CRD: namespaced `Widget` (short name `wd`) with status and
/// scale subresources, printer columns with a condition filter, and a
/// schema with a minimum, an enum, a default and a required field.
pub const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.orca.dev
spec:
  group: test.orca.dev
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Healthy
      type: string
      jsonPath: .status.conditions[?(@.type=="Healthy")].status
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [replicas]
            properties:
              replicas: {type: integer, minimum: 1, maximum: 9}
              flavor: {type: string, enum: [mysql, mariadb], default: mariadb}
              config:
                type: object
                additionalProperties: {type: string}
          status:
            type: object
            properties:
              replicas: {type: integer}
              observedGeneration: {type: integer}
              conditions:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [type]
                items:
                  type: object
                  required: [type, status]
                  properties:
                    type: {type: string}
                    status: {type: string}
                    reason: {type: string}
"#;
