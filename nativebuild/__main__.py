from nativebuild.cli import main

main()
