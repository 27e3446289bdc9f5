"""SAM templates, for ``nativebuild sam build``: reading them as SAM CLI does (YAML with
CloudFormation's short tags, or JSON; Globals; intrinsic functions), which resources to build and
how, and the built template SAM's other commands read. Pure decisions and file formats; the
builds themselves run in :mod:`nativebuild.pipeline.sam`."""
